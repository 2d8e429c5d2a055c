#!/usr/bin/env python3
"""table.py -- render the results of bench/peers/run.sh as one Markdown table.

  bench/peers/table.py RESULTS.tsv

RESULTS is the TSV of bench/peers/lib.sh (workload system value unit better durability
note). Rows are the workloads in lib.sh's order, columns the systems in run order, then
"reel / best peer" (oriented so that > 1 means reel is better; peers are the durable
systems other than reel, its variants, nginx and floor (and its variants), which are ceilings,
not stores, and the embedded SQLite, which is compared with reel's library in "reel-lib /
embedded peer") and
"reel, fraction of bound" (the reel figure over the machine limit that bounds it).
Rows limit_* (the machine, nginx's static-file ceiling), info_* (event sizes) and aux_*
(figures the fraction column needs) are not table rows. An n/a cell gets a footnote with
its reason; every cell's measurement note is listed under the table.
"""
import sys
from collections import OrderedDict

ROWS = ["ingest_batch", "ingest_single", "ingest_single_p50", "ingest_single_p99", "ingest_mix", "poll100",
        "restore_1k_p50", "restore_1k_p99", "restore_1m_p50", "restore_1m_p99",
        "fanout_p50", "fanout_p99", "export", "bytes_per_event", "bytes_ratio_mix", "bytes_ratio_1k",
        "restart_ms"]
LABEL = {
    "ingest_batch": "durable ingest, 100 x 1 KiB per request, 64 conns",
    "ingest_single": "durable ingest, 1 event per request, 64 conns",
    "ingest_single_p50": "durable ingest, 1 event per request, p50",
    "ingest_single_p99": "durable ingest, 1 event per request, p99",
    "ingest_mix": "durable ingest, mock-agent mix, batches of 100",
    "poll100": "poll read, 100 events after an offset, 64 conns",
    "restore_1k_p50": "newest 50 of a 1k-event session, p50",
    "restore_1k_p99": "newest 50 of a 1k-event session, p99",
    "restore_1m_p50": "newest 50 of a 1M-event session, p50",
    "restore_1m_p99": "newest 50 of a 1M-event session, p99",
    "fanout_p50": "live fan-out to 1,000 subscribers, p50",
    "fanout_p99": "live fan-out to 1,000 subscribers, p99",
    "export": "bulk export of the 1M-event session, zstd -3",
    "bytes_per_event": "bytes on disk per 1 KiB event",
    "bytes_ratio_mix": "data directory / JSON bytes, issue-19 realistic mix",
    "bytes_ratio_1k": "data directory / JSON bytes, 1 KiB events",
    "restart_ms": "restart to first served read, 10 GiB",
}
ORDER = ["reel", "redis", "floor", "floor-mhd", "floor-mhdz", "floor-mhdzl", "postgres", "sqlite", "streams", "nginx", "ndjson-zstd3"]
NOT_PEERS = {"reel", "nginx", "machine", "ndjson-zstd3", "floor"}
# Embedded (in-process, no network) peers are compared with reel's library (the reel-lib
# column, when a module measured it), not with reel over HTTP.
EMBEDDED = {"sqlite"}


def load(path):
    res = OrderedDict()  # (workload, system) -> dict
    for line in open(path, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 7:
            f += [""] * (7 - len(f))
        w, s, v, unit, better, dur, note = f[:7]
        try:
            value = float(v)
        except ValueError:  # "n/a", or a module that produced no number
            value, note = None, note or "no value recorded"
        res[(w, s)] = {"value": value, "unit": unit, "better": better,
                       "durability": dur, "note": note}
    return res


def base(w):
    """restore_1k_p50 -> restore_1k, fanout_p99 -> fanout, bytes_ratio_mix -> bytes_ratio: the
    key a module's result_na uses."""
    if w.startswith("bytes_ratio_"):
        return "bytes_ratio"
    return w.rsplit("_", 1)[0] if w.endswith(("_p50", "_p99")) else w


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "{:.1f}".format(v)
    return "{:.2f}".format(v)


def systems_of(res):
    seen = [s for (_, s) in res if s != "machine"]
    cols = [s for s in ORDER if s in seen]
    cols += [s for s in OrderedDict.fromkeys(seen) if s not in cols]
    return cols


def is_peer(res, s):
    if s in NOT_PEERS or s in EMBEDDED or s.startswith(("reel-", "floor-")):
        return False
    durs = {r["durability"] for (w, t), r in res.items() if t == s and r["value"] is not None}
    return "async" not in durs


def ratio(res, w, cols, me="reel", peers_of=None):
    reel = res.get((w, me))
    if not reel or reel["value"] is None:
        return ""
    peers = [(res[(w, s)]["value"], s) for s in cols
             if (s in peers_of if peers_of else is_peer(res, s)) and (w, s) in res and res[(w, s)]["value"]]
    if not peers or not reel["value"]:
        return ""
    higher = reel["better"] != "lower"
    best, who = max(peers) if higher else min(peers)
    r = reel["value"] / best if higher else best / reel["value"]
    return "{:.2f}x ({})".format(r, who)


def limit(res, key, system="machine"):
    r = res.get((key, system))
    return r["value"] if r and r["value"] else None


def bound(res, w):
    """The reel figure as a fraction of the machine limit that bounds it."""
    v = res.get((w, "reel"), {}).get("value")
    if v is None:
        return ""
    ev, mix = limit(res, "info_event_bytes"), limit(res, "info_mix_bytes")
    seq, fsync = limit(res, "limit_seqwrite"), limit(res, "limit_fdatasync")
    loop, zstd = limit(res, "limit_loopback"), limit(res, "limit_zstd3")
    commits = limit(res, "aux_commits_single", "reel")
    poll_bytes = limit(res, "aux_poll_bytes", "reel")
    if w == "ingest_batch" and ev and seq:
        return "{:.2f} of seq. write ({:.0f} of {:.0f} MB/s)".format(v * ev / 1e6 / seq, v * ev / 1e6, seq)
    if w == "ingest_mix" and mix and seq:
        return "{:.2f} of seq. write ({:.0f} of {:.0f} MB/s)".format(v * mix / 1e6 / seq, v * mix / 1e6, seq)
    if w == "ingest_single" and commits and fsync:
        return "{:.2f} of fdatasync rate ({:.0f} commits/s of {:.0f}; {:.0f} events/commit)".format(
            commits / fsync, commits, fsync, v / commits)
    if w == "poll100" and poll_bytes and loop:
        ngx = res.get((w, "nginx"), {}).get("value")
        return "{:.3f} of loopback ({:.0f} of {:.0f} MB/s){}".format(
            poll_bytes / 1e6 / loop, poll_bytes / 1e6, loop,
            "; {:.2f} of nginx static pages".format(v / ngx) if ngx else "")
    if w == "export" and zstd:
        return "{:.2f} of zstd -3 CLI ({:.0f} MB/s)".format(v / zstd, zstd)
    ng = res.get((w, "nginx"), {}).get("value")
    if w.startswith("restore_") and ng:
        return "nginx static 50-event page: {:.0f} us ({:.2f} of reel's time)".format(ng, ng / v)
    if w == "bytes_per_event" and ev:
        return "{:.2f}x the JSON ({:.0f} B)".format(v / ev, ev)
    return ""


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    res = load(sys.argv[1])
    cols = systems_of(res)
    notes, foot = [], OrderedDict()
    lib = "reel-lib" in cols and any(s in cols for s in EMBEDDED)
    out = ["| workload | unit | " + " | ".join(cols) + " | reel / best peer |" +
           (" reel-lib / embedded peer |" if lib else "") + " reel, fraction of bound |",
           "| --- | --- | " + " | ".join("---:" for _ in cols) + " | ---: |" + (" ---: |" if lib else "") + " --- |"]
    durs = []
    for s in cols:
        d = sorted({r["durability"] for (w, t), r in res.items() if t == s and r["durability"]})
        durs.append(", ".join(d) or "")
    out.append("| durability | | " + " | ".join(durs) + " | |" + (" |" if lib else "") + " |")
    for w in ROWS:
        cells, unit = [], ""
        for s in cols:
            r = res.get((w, s))
            if r is None:  # a module's n/a for the whole workload (never another row's number)
                b = res.get((base(w), s))
                r = b if b and b["value"] is None else None
            if r is None:
                cells.append("")
                continue
            if r["value"] is None:
                k = foot.setdefault(r["note"] or "not measured", len(foot) + 1)
                cells.append("n/a[^%d]" % k)
                continue
            unit = unit or r["unit"]
            cells.append(fmt(r["value"]))
            if r["note"]:
                notes.append("- %s, %s: %s" % (w, s, r["note"]))
        if not any(cells):
            continue
        extra = " %s |" % ratio(res, w, cols, "reel-lib", EMBEDDED) if lib else ""
        out.append("| %s | %s | %s | %s |%s %s |" % (LABEL.get(w, w), unit, " | ".join(cells),
                                                      ratio(res, w, cols), extra, bound(res, w)))
    lim = [(w, s, r) for (w, s), r in res.items() if w.startswith(("limit_", "info_")) and r["value"]]
    out += ["", "Machine limits and sizes (measured first, same run):", ""]
    out += ["- %s (%s): %s %s%s" % (w, s, fmt(r["value"]), r["unit"], "; " + r["note"] if r["note"] else "")
            for w, s, r in lim]
    out += ["", "Rules: the same event bytes for every system (bench/peers/gen_events.py: realistic "
            "~1 KiB agent events; the mix from `reel mock-agent`); the same durability (acknowledged "
            "only after fsync) except in columns marked async; load generator and server share the "
            "machine's cores, unpinned, for every system; a fresh data directory per system; medians "
            "of 3 runs (1 with --quick). reel / best peer: > 1 means reel is better."]
    if foot:
        out += [""] + ["[^%d]: %s" % (k, t) for t, k in foot.items()]
    if notes:
        out += ["", "<details><summary>How each cell was measured</summary>", ""] + notes + ["", "</details>"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
