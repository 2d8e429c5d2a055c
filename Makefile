# reel -- build, test, run. See README.md.
#
#   make          build build/reel (warnings are errors)
#   make deps     install missing Debian packages for tests (idempotent; apt-get as root)
#   make deps-run only those building and serving need (make run)
#   make check    build + the unit, CLI and HTTP suites, quick (about a minute; installs nothing)
#   make test     deps + build + every test, ending with "N passed, N failed"
#   make asan     the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan     the unit, CLI and HTTP suites under ThreadSanitizer (build/thread)
#   make install  reel, its man page, completions, systemd unit under $(DESTDIR)$(PREFIX)
#   make deb      a Debian package in build/deb/ (make docker: the container image)
#   make run      deps-run + build + `reel serve` on ./reel-data at 127.0.0.1:2469
#   make cluster-test  three cells and a spare behind nginx: routing, 421, conformance,
#                 cluster-wide reads, 50 kill -9 rounds of a cell, the PostgreSQL primary
#                 killed, a stopped cell, moving shards under load and the zombie owner; the
#                 PostgreSQL sink at full size (50 kill -9 rounds of the sink); machine loss
#                 and `reel cluster restore` under 30 s of load
#   make bench    benchmarks (numbers, never pass/fail); see docs/BENCHMARKS.md
#   make bench-retention  retention: 10,000 sessions, churn, append p99 (docs/BENCHMARKS.md)
#   make bench-peers  reel beside Redis, PostgreSQL, SQLite, Durable Streams, nginx (installs them)
#   make load     load tests at full size (10,000 SSE clients, slowloris); make test runs small ones
#   make soak     SOAK_SECONDS (600) of mixed load: health p99, RSS over time, every ack checked
#   make leakcheck  clean-shutdown leak check: LeakSanitizer (ASan build) and valgrind

CC       ?= cc
SANITIZER ?=
ifeq ($(SANITIZER),)
  BUILD  ?= build
else
  BUILD  ?= build/$(SANITIZER)
endif
STD       = -std=c11 -D_GNU_SOURCE
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
            -Wno-unused-parameter
OPT      ?= -O2 -g
CFLAGS   += $(STD) $(WARN) $(OPT) $(XCFLAGS) -MMD -MP -I.
LDLIBS   += -llmdb -lmsgpackc -lmicrohttpd -ljansson -lzstd -lcrypto -lcurl -lsystemd -lpq -lpthread -lm
# libpq (reel sink postgres): its header lives in its own directory on Debian.
PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)

ifeq ($(SANITIZER),address)
  CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SANITIZER),thread)
  CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=thread
endif

# Recursive makes build in parallel (one job per CPU) unless the caller chose -j already;
# --output-sync keeps each compiler's messages together.
NPROC   := $(shell nproc 2>/dev/null || echo 2)
JOBS     = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC) --output-sync=target)
SUBMAKE  = $(MAKE) --no-print-directory $(JOBS)

# A module's sources are its folder and one level of subfolders (api/core/*.c, ...).
MODULES  = store ingest replay agents retain cluster api
LIBSRC   = $(foreach m,$(MODULES),$(wildcard $(m)/*.c $(m)/*/*.c))
LIBOBJ   = $(LIBSRC:%.c=$(BUILD)/obj/%.o)
TOOLSRC  = $(wildcard tools/*.c)
TOOLOBJ  = $(TOOLSRC:%.c=$(BUILD)/obj/%.o)
UNITSRC  = $(wildcard tests/unit/*.c)
UNITOBJ  = $(UNITSRC:%.c=$(BUILD)/obj/%.o)
BENCHSRC = $(wildcard bench/bench_*.c)
BENCHBIN = $(BENCHSRC:bench/%.c=$(BUILD)/%)
BENCHOBJ = $(BENCHSRC:%.c=$(BUILD)/obj/%.o)
ALLOBJ   = $(LIBOBJ) $(TOOLOBJ) $(UNITOBJ) $(BENCHOBJ)

.PHONY: powerloss powerloss-quick bench-retention all deps deps-run check doc deb docker test unit agents record-agents asan tsan tsan-run install uninstall run bench browser conformance cluster-test clients \
        torture mutants clean format load soak leakcheck
all: $(BUILD)/reel

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/tools/cmd_sink.o $(BUILD)/obj/tools/sink_pg.o $(BUILD)/obj/tools/sink_feed.o: CFLAGS += $(PQ_CFLAGS)
$(BUILD)/obj/tools/sink_fence.o $(BUILD)/obj/tools/cluster_move.o $(BUILD)/obj/tools/cluster_move_io.o: CFLAGS += $(PQ_CFLAGS)
$(BUILD)/obj/cluster/pgload.o $(BUILD)/obj/cluster/pgcol.o: CFLAGS += $(PQ_CFLAGS)

# Made afresh: 'ar r' would keep members of files that were moved or removed.
$(BUILD)/libreel.a: $(LIBOBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

# The commit this build comes from (store/version.c): a stamp file that changes only when the
# commit does, so only version.o is rebuilt.
REEL_COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/gen/commit: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = "$(REEL_COMMIT)" ] || echo "$(REEL_COMMIT)" > $@
$(BUILD)/obj/store/version.o: $(BUILD)/gen/commit
$(BUILD)/obj/store/version.o: CFLAGS += -DREEL_COMMIT='"$(REEL_COMMIT)"'
FORCE:

$(BUILD)/reel: $(TOOLOBJ) $(BUILD)/libreel.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ifneq ($(SANITIZER),thread)
$(BUILD)/unit: $(UNITOBJ) $(BUILD)/libreel.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion
else
# Criterion cannot start under TSan: the same tests are built against the small stand-in
# of tests/tsan/criterion/criterion.h and run by tests/tsan/runner.c (one process each).
SHIMOBJ  = $(UNITSRC:%.c=$(BUILD)/obj/shim/%.o) $(BUILD)/obj/shim/tests/tsan/runner.o
ALLOBJ  += $(SHIMOBJ)
$(BUILD)/obj/shim/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/tsan -c $< -o $@
$(BUILD)/unit: $(SHIMOBJ) $(BUILD)/libreel.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
endif

$(BUILD)/bench_%: $(BUILD)/obj/bench/bench_%.o $(BUILD)/libreel.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The web inspector (/ui/): ui/* embedded into the binary as a generated header. Every
# api/ object may include it (wherever ui.c lives in api/): the header is made before any
# of them compiles, and their .d files then track it like any other header.
UIFILES  = $(wildcard ui/*)
APIOBJ   = $(filter $(BUILD)/obj/api/%,$(LIBOBJ))
$(BUILD)/gen/ui_assets.h: scripts/embed_ui.sh $(UIFILES)
	@mkdir -p $(dir $@)
	scripts/embed_ui.sh $@ $(UIFILES)
$(APIOBJ): | $(BUILD)/gen/ui_assets.h
$(APIOBJ): CFLAGS += -I$(BUILD)/gen

deps:
	@scripts/deps.sh test

# What building and serving need, nothing else (make run).
deps-run:
	@scripts/deps.sh run

unit: $(BUILD)/reel $(BUILD)/unit

test: deps
	@$(SUBMAKE) unit
	@tests/run.sh $(BUILD)

# The quick pass for every change: no deps step, no load/fuzz/mutants/conformance, the HTTP
# suite without its slowest soak-like tests (tests/run.sh --quick says which).
check:
	@$(SUBMAKE) unit
	@tests/run.sh --quick $(BUILD) unit cli http

browser: all
	@tests/browser/run.sh

# kill -9 of the server under concurrent HTTP appends, 1000 rounds (make test runs 50).
torture: all
	REEL_BIN=$(CURDIR)/$(BUILD)/reel REEL_KILL_ROUNDS=$${REEL_KILL_ROUNDS:-1000} \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/http/test_crash.py

# Power loss at random points under concurrent HTTP appends (tests/powerloss/plshim.c, an
# LD_PRELOAD shim that discards every write no completed fsync covers, then SIGKILLs):
# 30 rounds per model in make test (powerloss-quick), 1000 here; plus negative controls.
$(BUILD)/powerloss/plshim.so: tests/powerloss/plshim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl -lpthread
powerloss-quick: all $(BUILD)/powerloss/plshim.so
	REEL_BIN=$(CURDIR)/$(BUILD)/reel PLSHIM_SO=$(CURDIR)/$(BUILD)/powerloss/plshim.so \
	    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/powerloss/test_shim.py tests/powerloss/test_powerloss.py
powerloss: all $(BUILD)/powerloss/plshim.so
	REEL_BIN=$(CURDIR)/$(BUILD)/reel PLSHIM_SO=$(CURDIR)/$(BUILD)/powerloss/plshim.so \
	    REEL_POWERLOSS_ROUNDS=$${REEL_POWERLOSS_ROUNDS:-1000} \
	    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/powerloss/test_shim.py tests/powerloss/test_powerloss.py

# Negative controls: patched builds that break one promise each; their tests must fail.
mutants: all
	@tests/mutants/run.sh $(BUILD)

# Cells behind a real nginx (docs/CLUSTER.md): 10,000 sessions routed, 421s, epochs, and the
# Durable Streams conformance suite through nginx (tests/cluster/run.sh; make test runs a
# quick version); then the PostgreSQL sink at full size: kill -9 the sink 50 times under
# load (make test: 20); then --ack replica's readers under 30 s of load (make test: 4 s).
cluster-test: all
	tests/cluster/run.sh $(BUILD)
	REEL_BIN=$(CURDIR)/$(BUILD)/reel REEL_SINK_KILLS=50 /usr/bin/python3 -m pytest -q -rxX \
	    -p no:cacheprovider tests/http/test_sink_postgres.py
	REEL_BIN=$(CURDIR)/$(BUILD)/reel REEL_RESTORE_SECONDS=30 /usr/bin/python3 -m pytest -q -s \
	    -rxX -p no:cacheprovider tests/http/test_restore.py
	REEL_BIN=$(CURDIR)/$(BUILD)/reel REEL_ACK_SECONDS=30 /usr/bin/python3 -m pytest -q -rxX \
	    -p no:cacheprovider tests/http/test_ack_replica.py

# The Durable Streams conformance suite (npm @durable-streams/server-conformance-tests).
conformance: all
	cd tests/conformance && npm ci --no-audit --no-fund
	tests/conformance/run.sh $(BUILD)/reel

# The real agent CLIs (pinned in tests/agents/<agent>/) through `reel run`, against
# scripted fake model APIs on 127.0.0.1 (docs/AGENTS.md section 7).
agents: all
	tests/agents/run.sh $(BUILD)

# Re-records the golden cases of the real agent CLIs after a version upgrade: runs every
# scenario, keeps its native output as tests/cases/agents/<agent>/<version>-<scenario>/
# input.jsonl, then rewrites the expected events. Review the diff before committing it.
record-agents: all $(BUILD)/unit
	REEL_RECORD_GOLDEN=1 tests/agents/run.sh $(BUILD)
	REEL_UPDATE_GOLDEN=1 $(BUILD)/unit --filter 'agents_golden/*'

# The client packages: reel-client (clients/typescript, node --test against a real server).
clients: all
	clients/typescript/run-tests.sh $(BUILD)/reel

asan:
	@$(MAKE) --no-print-directory SANITIZER=address test

# ThreadSanitizer: the server runs libmicrohttpd's threads, the committer and the watcher.
# Runs the unit suite (against a stand-in for Criterion, which cannot start under TSan: its
# BoxFort arena mmap fails, Snaipe/Criterion issue 274), and the CLI and HTTP suites against
# build/thread/reel.
# Reports go to build/thread/tsan/ (one file per process, children included); any report
# fails the run. tests/tsan.supp holds the third-party suppressions, each with its reason.
TSAN_LOG = $(CURDIR)/build/thread/tsan
tsan:
	@$(MAKE) --no-print-directory SANITIZER=thread tsan-run

tsan-run:
	@$(SUBMAKE) $(BUILD)/reel $(BUILD)/unit
	@rm -rf $(TSAN_LOG) && mkdir -p $(TSAN_LOG)
	@TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp log_path=$(TSAN_LOG)/report \
	    second_deadlock_stack=1 $$TSAN_OPTIONS" \
	    tests/run.sh $(BUILD) unit cli http; rc=$$?; \
	    n=$$(cat $(TSAN_LOG)/report.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer'); \
	    echo "tsan: $$n reports in $(TSAN_LOG)"; \
	    cat $(TSAN_LOG)/report.* 2>/dev/null | grep '^SUMMARY: ThreadSanitizer' | sort | uniq -c | sort -rn; \
	    [ $$rc -eq 0 ] && [ $$n -eq 0 ]

# Installs the reel binary only. The library headers are not installed: they include each
# other by repository path (store/store.h) and are internal, with no stable ABI (api/ is
# being split into layers); embed libreel.a from a checkout instead.
PREFIX  ?= /usr/local
DESTDIR ?=
# The man page and the bash and zsh completions, generated from the --help texts.
doc: $(BUILD)/doc/reel.1
$(BUILD)/doc/reel.1: $(BUILD)/reel scripts/docs_from_help.py
	python3 scripts/docs_from_help.py $(BUILD)/reel $(BUILD)/doc

# PREFIX=/usr/local DESTDIR= : the binary, its man page, completions and systemd unit.
install: all doc
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	    $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/reel $(DESTDIR)$(PREFIX)/bin/reel
	gzip -9n < $(BUILD)/doc/reel.1 > $(DESTDIR)$(PREFIX)/share/man/man1/reel.1.gz
	install -m 644 $(BUILD)/doc/reel.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/reel
	install -m 644 $(BUILD)/doc/_reel $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_reel
	sed 's|/usr/bin/reel|$(PREFIX)/bin/reel|' packaging/reel.service \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/reel.service

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/reel $(DESTDIR)$(PREFIX)/share/man/man1/reel.1.gz \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/reel \
	    $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_reel \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system/reel.service

# A Debian package (packaging/deb/): make install into a staging root with PREFIX=/usr,
# the control file, and postinst/postrm that create and remove the 'reel' user.
deb: all doc
	packaging/deb/build.sh $(BUILD)

# The container image (packaging/Dockerfile); needs a running docker.
docker:
	docker build -f packaging/Dockerfile -t reel:latest .

# Load, soak and leak check (tests/load/; docs/RELIABILITY.md "Load and soak").
SOAK_SECONDS ?= 600
load: all
	REEL_BIN=$(CURDIR)/$(BUILD)/reel REEL_LOAD_FULL=1 /usr/bin/python3 -m pytest -q -rxX -s \
	    -p no:cacheprovider tests/load/test_slow_clients.py tests/load/test_sse_load.py

soak: all
	REEL_BIN=$(CURDIR)/$(BUILD)/reel /usr/bin/python3 tests/load/soak.py \
	    --seconds $(SOAK_SECONDS) --out $(BUILD)/soak --progress

leakcheck: deps all
	@$(MAKE) --no-print-directory SANITIZER=address BUILD=build/address all
	REEL_BIN=$(CURDIR)/build/address/reel REEL_LEAK_TOOL=lsan /usr/bin/python3 -m pytest -q -s \
	    -p no:cacheprovider tests/load/test_leak.py
	REEL_BIN=$(CURDIR)/$(BUILD)/reel REEL_LEAK_TOOL=valgrind /usr/bin/python3 -m pytest -q -s \
	    -p no:cacheprovider tests/load/test_leak.py

run: deps-run
	@$(SUBMAKE) all
	$(BUILD)/reel serve

bench: deps
	@$(SUBMAKE) all $(BENCHBIN)
	@bench/bench.sh $(BUILD)

# Retention (issue 21): mixed policies on 10,000 sessions, churn, append p99 with the janitor.
bench-retention:
	@$(SUBMAKE) all $(BUILD)/bench_retention
	$(BUILD)/bench_retention

format:
	clang-format -i $(LIBSRC) $(TOOLSRC) $(UNITSRC) $(BENCHSRC) $(wildcard */*.h */*/*.h)

clean:
	rm -rf build

# Header dependencies written by -MMD, one .d beside each object.
-include $(ALLOBJ:.o=.d)

# Fuzzing (libFuzzer) and syscall fault injection: make fuzz, fuzz-quick, fault.
include tests/fuzz/fuzz.mk

# Side-by-side benchmarks with the peers: make bench-peers (bench/peers/).
include bench/peers/peers.mk

# The malloc-failure run: make oom, oom-quick (tests/oom/).
include tests/oom/oom.mk
