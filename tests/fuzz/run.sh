#!/bin/sh
# run.sh SECONDS HARNESS... -- runs each libFuzzer harness build/fuzz/fuzz_<h> for SECONDS
# (0 = no fuzzing, regressions only) on its committed seed corpus, then replays
# tests/fuzz/regressions/<h>/*. Prints one line per harness with executions, new crashes
# and regression results, then "fuzz: N passed, N failed". Exit 1 on any crash or failing
# regression. FUZZ_FLAGS adds libFuzzer flags; tests/fuzz/<h>.options adds per-harness ones.
set -u
secs=$1
shift
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
out=build/fuzz
# UBSan is built recoverable so that known, reported bugs can be suppressed during
# campaigns (ubsan-known.supp); halt_on_error makes every other report a crash.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$top/tests/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
passed=0
failed=0
for h in "$@"; do
    bin=$out/fuzz_$h
    [ -x "$bin" ] || { echo "fuzz $h: $bin missing"; failed=$((failed + 1)); continue; }
    seeds=tests/fuzz/corpus/$h
    # Long runs grow build/fuzz/corpus/<h>; short ones (make fuzz-quick) start from the
    # committed seeds in a scratch directory, so their time goes to fuzzing and not to
    # replaying a corpus that keeps growing.
    if [ "$secs" -gt 30 ]; then
        work=$out/corpus/$h
    else
        work=$out/quick/$h
        rm -rf "$work"
    fi
    art=$out/artifacts/$h
    mkdir -p "$work" "$art"
    [ -f "tests/fuzz/$h.dict" ] && dict="-dict=tests/fuzz/$h.dict" || dict=
    opts=$(cat "tests/fuzz/$h.options" 2>/dev/null)
    envs=$(cat "tests/fuzz/$h.env" 2>/dev/null)
    runs=0
    crashes=0
    if [ "$secs" -gt 0 ]; then
        before=$(ls "$art" | wc -l)
        log=$out/$h.log
        # -max_len: the ingest and agent harnesses need long lines to reach some limits.
        cat tests/fuzz/lsan.supp tests/fuzz/lsan-known.supp >"$out/lsan-campaign.supp"
        LSAN_OPTIONS="suppressions=$top/$out/lsan-campaign.supp:print_suppressions=0" \
        UBSAN_OPTIONS="$UBSAN_OPTIONS:suppressions=$top/tests/fuzz/ubsan-known.supp" \
        FUZZ_KNOWN_BUGS=1 env $envs "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$art/" $dict $opts ${FUZZ_FLAGS:-} \
            "$work" "$seeds" >"$log" 2>&1
        rc=$?
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        [ -z "$runs" ] && runs=$(sed -n 's/.*Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
        crashes=$(( $(ls "$art" | wc -l) - before ))
        if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
            echo "fuzz $h: CRASH (exit $rc) after ${runs:-?} executions; see $log and $art/"
            grep -m 3 -E 'ERROR: |FUZZ CHECK FAILED|runtime error' "$log" | sed 's/^/    /'
            failed=$((failed + 1))
        else
            echo "fuzz $h: ${runs:-?} executions in ${secs}s, 0 crashes, corpus $(ls "$work" | wc -l) + $(ls "$seeds" | wc -l) seeds"
            passed=$((passed + 1))
        fi
    fi
    reg=tests/fuzz/regressions/$h
    if [ -d "$reg" ] && [ -n "$(ls "$reg")" ]; then
        n=0
        bad=0
        for f in "$reg"/*; do
            n=$((n + 1))
            if ! env $envs "$bin" $opts -runs=1 "$f" >"$out/$h.regress.log" 2>&1; then
                bad=$((bad + 1))
                echo "fuzz $h: regression FAILS: $f"
                grep -m 2 -E 'ERROR: |FUZZ CHECK FAILED|runtime error' "$out/$h.regress.log" | sed 's/^/    /'
            fi
        done
        echo "fuzz $h: regressions $((n - bad))/$n pass"
        passed=$((passed + n - bad))
        failed=$((failed + bad))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
