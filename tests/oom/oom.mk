# tests/oom/oom.mk -- the malloc-failure run (tests/oom/oom.c, docs/RELIABILITY.md).
#
#   make oom         every allocation of every operation failed once (transient), then
#                    again failing it and every later one (persistent)
#   make oom-quick   the transient pass only, without any operation marked with an open
#                    bug in oom.c (none now; tests/run.sh runs it; about 3 s)
#
# Built with the Makefile's CFLAGS against $(BUILD)/libreel.a, so SANITIZER=address gives
# an ASan run. Prints one line per operation and "N passed, N failed".

OOM_SAVED_GOAL := $(.DEFAULT_GOAL)

OOMBIN := $(BUILD)/oom/oom
OOMOBJ := $(BUILD)/obj/tests/oom/oom.o $(BUILD)/obj/tests/oom/failmalloc.o

.PHONY: oom oom-quick

# The injector runs before the sanitizer runtime is set up (the dynamic loader allocates
# first): it must not be instrumented. Blocks still come from ASan's allocator.
$(BUILD)/obj/tests/oom/failmalloc.o: CFLAGS += -fno-sanitize=all

$(OOMBIN): $(OOMOBJ) $(BUILD)/libreel.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -ldl

oom-quick: $(OOMBIN)
	@$(OOMBIN) --quick

oom: $(OOMBIN)
	@$(OOMBIN); st=$$?; $(OOMBIN) --persistent && exit $$st

.DEFAULT_GOAL := $(OOM_SAVED_GOAL)

# The objects' header dependencies (a changed store.h must rebuild the driver).
-include $(OOMOBJ:.o=.d)
