#!/bin/sh
# run.sh BUILD [NAME...] -- negative controls by mutation: each tests/mutants/<name>.patch
# breaks one promise of README.md "Guarantees" in the product's source; the test that guards that promise
# must fail against the mutant build. A mutant that passes its test is a test that cannot
# fail, and counts as a failure here.
#
# The product carries no test-only switch: a mutant is a patched copy of the tree, built in
# build/mutants/<name>/ (reusing BUILD's objects, so only the patched files recompile).
# Ends with "N passed, N failed" (passed = mutant caught), the line tests/run.sh counts.
set -u
case "${1:-}" in -h|--help|"") sed -n '2,9p' "$0"; [ -n "${1:-}" ]; exit $? ;; esac
BUILD=$1
shift
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1

# name | the test command that must fail against it (run from the mutant's tree root, with
# REEL_BIN set to the mutant's binary and BUILD to its build directory, where a command that
# names $BUILD/unit finds the unit tests built from the mutant) | what the mutant breaks
MUTANTS='
ack-before-commit|REEL_KILL_ROUNDS=20 /usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_crash.py|answers an append before its transaction commits
unchained-hash|REEL_KILL_ROUNDS=2 /usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_crash.py|stores hashes that do not chain to the previous event
no-fail-stop|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/fault/test_faults.py -k "test_serve_fault and fdatasync"|keeps accepting appends after an fsync failed (fsyncgate)
full-disk-fail-stop|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/fault/test_faults.py -k test_serve_disk_full_then_space_back|stops for good when the disk is full instead of resuming when space is back
eio-taken-for-full|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/fault/test_faults.py -k "test_serve_fault and (short-not-full or writev)"|takes every write error for a full disk (no free-space check), so an I/O error no longer stops the store
full-after-broken-meta|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/fault/test_faults.py -k "test_serve_fault and pwrite-ENOSPC-meta"|answers 507 after the meta page write failed (the LMDB environment is broken), instead of stopping
import-unchecked-digest|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cli/test_import_damage.py -k corpus|imports an export whose bytes do not match its check records
export-records-uncut|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cli/test_export_snapshot.py|exports session records newer than the events of the export
unchecked-read|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_corrupt_values.py -k data-text|serves a stored event without recomputing its chain hash (issue 14, finding 6)
unguarded-reads|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/fault/test_page_damage.py -k every_branch|lets a damaged page abort verify and the server (LMDB asserts, issue 14)
archive-failure-ignored|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_retention.py -k archive_command|removes what retention could not archive (issue 21: nothing dropped silently)
trim-forgets-boundary|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_retention.py -k max_events_trims|trims without keeping the boundary chain hash, so the kept chain cannot be verified
redact-stale-cache|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_redact_after.py -k "rewrites_marks or reads_during"|serves the old envelope of an event from the store envelope cache after a redaction committed (issue 21)
redact-unkept-hash|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cli/test_redact.py -k data_directory|checks the chain of a redacted event with the hash of its new body instead of the kept original hash (issue 21)
cell-serves-any-session|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cluster/test_routing.py -k misdirected|a cell answers a session of a shard it does not own instead of 421 (two writers of one session, issue 18)
epoch-not-fenced|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cluster/test_routing.py -k epochs|a cell accepts a cluster map older than one it has seen (no fencing, issue 18)
ack-before-replica|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_ack_replica.py -k every_acknowledged|answers a write under --ack replica before the replica holds it (issue 18)
reads-past-watermark|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_ack_replica.py -k "stopped_sink or never_see"|lets readers see events past the replica watermark under --ack replica (issue 18)
load-unchecked-chain|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_restore.py -k broken_chain|restores events whose chain hash does not follow from the previous one (issue 18: a damaged copy is refused, naming session and sequence)
sink-ignores-shard-fence|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cluster/test_move.py -k "shard_fence or partitioned"|the sink of an old owner copies writes of a shard moved away after its fence, so under --ack replica a zombie acknowledges them (two writers, issue 18)
loading-shard-served|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/cluster/test_move.py -k loading_shards|a cell serves a shard that is still being copied in (a write before its history arrives, issue 18)
usage-counts-duplicates|/usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/http/test_session_usage.py -k duplicates|adds the usage of a duplicate event to the summary of its session again (a retried batch double-counts tokens, issue 22)
journal-ack-before-flush|REEL_POWERLOSS_ROUNDS=30 /usr/bin/python3 -m pytest -x -q -p no:cacheprovider tests/powerloss/test_powerloss.py -k "all-journal"|acknowledges a journaled group before the journal fdatasync (issue 19: the journal makes a group durable)
journal-no-meta-rewrite|$BUILD/unit --filter "store_journal/a_meta_page_ahead*"|recovers a journal without writing the meta page of its checkpoint back, replaying onto whatever data.mdb holds (issue 19)
tail-drops-ids|$BUILD/unit --filter "store_ixdup/tails*"|moves a full index tail into the trees without its UUID entries, so a retried append of an older event is stored twice (issue 19: idempotent appends)
'

make --no-print-directory -s "$BUILD/reel" build/fault/faultfs.so >/dev/null || exit 1
mkdir -p build/mutants
rm -f build/mutants/tally
echo "$MUTANTS" | while IFS='|' read -r name cmd what; do
    [ -n "$name" ] || continue
    if [ $# -gt 0 ] && ! echo " $* " | grep -q " $name "; then continue; fi
    dir=build/mutants/$name
    rm -rf "$dir"
    mkdir -p "$dir/$BUILD"
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp -p --parents -t "$dir"  # -p: keep mtimes, so make reuses the objects
    cp -a "$BUILD/obj" "$BUILD/gen" "$dir/$BUILD/" 2>/dev/null
    if ! (cd "$dir" && patch -s -p0 <"$top/tests/mutants/$name.patch" &&
          make --no-print-directory -s BUILD="$BUILD" "$BUILD/reel" >build.log 2>&1 &&
          { ! echo "$cmd" | grep -q 'BUILD/unit' ||
            make --no-print-directory -s BUILD="$BUILD" "$BUILD/unit" >>build.log 2>&1; }); then
        echo "mutant $name: does not apply or build (see $dir/build.log)"
        echo missed >>build/mutants/tally
        continue
    fi
    echo "== mutant $name: $what"
    if (cd "$dir" && env BUILD="$BUILD" REEL_BIN="$top/$dir/$BUILD/reel" FAULTFS_SO="$top/build/fault/faultfs.so" \
            sh -c "$cmd" >test.log 2>&1); then
        echo "mutant $name: NOT caught, its test passed (see $dir/test.log)"
        echo missed >>build/mutants/tally
    else
        echo "mutant $name: caught: $(grep -E '^(E  |FAILED|\[FAIL\])' "$dir/test.log" | head -n 1 | cut -c1-150)"
        echo caught >>build/mutants/tally
    fi
done
caught=$(grep -c caught build/mutants/tally 2>/dev/null)
missed=$(grep -c missed build/mutants/tally 2>/dev/null)
rm -f build/mutants/tally
echo "${caught:-0} passed, ${missed:-0} failed"
[ "${missed:-0}" -eq 0 ]
