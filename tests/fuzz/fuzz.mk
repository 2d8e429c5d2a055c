# tests/fuzz/fuzz.mk -- libFuzzer harnesses and the LD_PRELOAD fault shim.
#
# Include it from the Makefile (`include tests/fuzz/fuzz.mk`) or use it on its own:
#   make -f Makefile -f tests/fuzz/fuzz.mk fuzz
#
#   make fuzz          every harness for FUZZ_SECONDS (default 60), then its regressions;
#                      prints executions and crashes per harness
#   make fuzz-quick    every harness for FUZZ_QUICK_SECONDS (default 20) + regressions
#   make fuzz-regress  replay tests/fuzz/regressions/<harness>/* only (seconds)
#   make fuzz-build    build/fuzz/<harness> for every harness
#   make fault-shim    build/fault/faultfs.so and failmalloc.so (tests/fault/)
#   make fault         the fault-injection tests (tests/fault/, needs build/reel)
#   make fuzz-seeds    rewrite the generated part of the seed corpora
#
# A regression input fails fuzz-quick until its bug is fixed (docs/RELIABILITY.md §4).
# Harnesses are compiled with clang against the module sources directly (not
# build/libreel.a), with -fsanitize=fuzzer,address,undefined. Objects go to
# build/fuzz/obj/, new corpus units to build/fuzz/corpus/<harness>/ (the committed seed
# corpus in tests/fuzz/corpus/<harness>/ is only read), crashes to
# build/fuzz/artifacts/<harness>/. Copy a crash into tests/fuzz/regressions/<harness>/ to
# keep it replayed by fuzz-quick.

# Included anywhere in the Makefile, this file must not become the default goal.
FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_QUICK_SECONDS ?= 20
FUZZ_DIR       := build/fuzz
FUZZ_HARNESSES := ingest value agents http
FUZZ_SAN       := -fsanitize=address,undefined \
                  -fno-omit-frame-pointer
FUZZ_CFLAGS    := -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_DIR)/gen -MMD -MP $(FUZZ_SAN) \
                  -fsanitize=fuzzer-no-link -Wall -Wno-unused-parameter -Wno-unused-function \
                  $(PQ_CFLAGS)
FUZZ_LDLIBS    := -llmdb -lmsgpackc -lmicrohttpd -ljansson -lzstd -lcrypto -lcurl -lpq -lpthread -lm
FUZZ_MODSRC    := $(foreach m,$(MODULES),$(wildcard $(m)/*.c $(m)/*/*.c))
FUZZ_MODOBJ    := $(FUZZ_MODSRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BINS      := $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-quick fuzz-regress fuzz-build fault-shim fault

fuzz-build: $(FUZZ_BINS)

# Keep the objects (they are intermediate files of the pattern rules).
.SECONDARY: $(FUZZ_MODOBJ) $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o) \
            $(FUZZ_DIR)/obj/tests/fuzz/mkvalues.o

# api/ui.c includes a header generated from ui/* (scripts/embed_ui.sh); make our own copy.
$(FUZZ_DIR)/gen/ui_assets.h: $(wildcard ui/*) $(wildcard scripts/embed_ui.sh)
	@mkdir -p $(dir $@)
	scripts/embed_ui.sh $@ $(wildcard ui/*)

$(filter $(FUZZ_DIR)/obj/api/%,$(FUZZ_MODOBJ)): | $(FUZZ_DIR)/gen/ui_assets.h

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_MODOBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LDLIBS)

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

fuzz-quick: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_QUICK_SECONDS) $(FUZZ_HARNESSES)

fuzz-regress: fuzz-build
	@tests/fuzz/run.sh 0 $(FUZZ_HARNESSES)

# ---- fault injection (tests/fault/) ----

build/fault/faultfs.so: tests/fault/faultfs.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -fPIC -shared -o $@ $< -ldl -lpthread

# The allocation-failure injector of tests/oom/ as an LD_PRELOAD object for a whole server
# (tests/fault/test_oom_server.py). Frame pointers: LeakSanitizer's stacks pass through it.
build/fault/failmalloc.so: tests/oom/failmalloc.c tests/oom/preload.c tests/oom/failmalloc.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -fno-omit-frame-pointer -I. -fPIC -shared -o $@ \
	    tests/oom/failmalloc.c tests/oom/preload.c -ldl

# Holds the server inside an LMDB map growth (tests/fault/test_mapgrow_kill.py).
build/fault/growshim.so: tests/fault/growshim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -fPIC -shared -o $@ $< -ldl

fault-shim: build/fault/faultfs.so build/fault/failmalloc.so build/fault/growshim.so

fault: build/fault/faultfs.so build/fault/failmalloc.so build/fault/growshim.so \
       $(or $(BUILD),build)/reel
	REEL_BIN=$(CURDIR)/$(or $(BUILD),build)/reel FAULTFS_SO=$(CURDIR)/build/fault/faultfs.so \
	    FAILMALLOC_SO=$(CURDIR)/build/fault/failmalloc.so \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/fault

# ---- seed corpora (committed; regenerate after a format change) ----

$(FUZZ_DIR)/mkvalues: $(FUZZ_DIR)/obj/tests/fuzz/mkvalues.o $(FUZZ_MODOBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -o $@ $^ $(FUZZ_LDLIBS)

.PHONY: fuzz-seeds
fuzz-seeds: $(FUZZ_DIR)/mkvalues
	/usr/bin/python3 tests/fuzz/make_seeds.py
	$(FUZZ_DIR)/mkvalues tests/fuzz/corpus/value

# Header dependencies of the fuzz objects (-MMD writes a .d beside each).
-include $(FUZZ_MODOBJ:.o=.d) $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.d) \
         $(FUZZ_DIR)/obj/tests/fuzz/mkvalues.d

.DEFAULT_GOAL := $(FUZZ_SAVED_GOAL)
