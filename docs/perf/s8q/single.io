window 6s: 5042 commits, 155414 events (reel_store_*_total)
syscr 11065 syscw 701284 write_bytes 11648786432 over 7.2 s
per event: 74953 bytes written to the block layer, 0.07 read + 4.51 write syscalls
per commit: 30.8 events, 2310350 bytes written
wrk (whole run, includes the warm-up and the perf window):
    Latency     3.38ms    4.98ms  92.86ms   98.66%
  Latency Distribution
     50%    2.81ms
     99%   11.27ms
Requests/sec:  21172.66
