# peers.mk -- `make bench-peers`: reel beside Redis, PostgreSQL, SQLite, the Durable Streams
# reference server and nginx, same machine, same durability (docs/BENCHMARKS.md).
#
#   make bench-peers                    install the peers, build, run every system (full)
#   make bench-peers PEERS_ARGS=--quick small sizes, one run per figure
#   bench/peers/run.sh build --help     the driver's options (--only, --skip-restart)
#
# The helper programs build into $(BUILD)/peers/ with the project's warning flags. A
# module's own program is bench/peers/<module>_*.c and is picked up by the wildcard; one
# that needs a library gets its LDLIBS line below.

PEERS_DIR  = $(BUILD)/peers
PEERS_SRC  = $(wildcard bench/peers/*.c)
PEERS_BIN  = $(PEERS_SRC:bench/peers/%.c=$(PEERS_DIR)/%)
PEERS_ARGS ?=

$(PEERS_DIR)/%: bench/peers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) $(OPT) -o $@ $< $(PEERS_LDLIBS_$*) -lpthread

# Per-program libraries (helper B's programs): PEERS_LDLIBS_<name> = -l...
# sqlite_bench links reel's own store library beside SQLite (in-process comparison).
PEERS_LDLIBS_sqlite_bench = -I. $(BUILD)/libreel.a -lsqlite3 $(LDLIBS)
PEERS_LDLIBS_pg_bench     = -I/usr/include/postgresql -lpq -lzstd
PEERS_LDLIBS_zstd_cost    = -lzstd
PEERS_LDLIBS_mhd_floor    = -lmicrohttpd -lzstd
$(PEERS_DIR)/sqlite_bench: $(BUILD)/libreel.a

.PHONY: bench-peers peers-deps peers-bin
peers-deps:
	@bench/peers/deps.sh

peers-bin: $(PEERS_BIN)

bench-peers: peers-deps
	@$(MAKE) --no-print-directory all peers-bin
	@bench/peers/run.sh $(BUILD) $(PEERS_ARGS)
