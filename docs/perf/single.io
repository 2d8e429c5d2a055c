window 8s: 1740 commits, 52693 events (reel_store_*_total)
syscr 8535 syscw 156090 write_bytes 2852904960 over 9.3 s
per event: 54142 bytes written to the block layer, 0.16 read + 2.96 write syscalls
per commit: 30.3 events, 1639601 bytes written
wrk (whole run, includes the warm-up and the perf window):
    Latency    18.78ms   26.91ms 192.94ms   89.38%
  Latency Distribution
     50%    8.96ms
     99%  136.65ms
Requests/sec:   5612.69
