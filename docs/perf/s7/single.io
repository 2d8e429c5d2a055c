window 5s: 2781 commits, 79741 events (reel_store_*_total)
syscr 9154 syscw 250097 write_bytes 3362545664 over 6.1 s
per event: 42168 bytes written to the block layer, 0.11 read + 3.14 write syscalls
per commit: 28.7 events, 1209114 bytes written
wrk (whole run, includes the warm-up and the perf window):
    Latency     7.46ms   13.30ms 155.17ms   94.40%
  Latency Distribution
     50%    4.10ms
     99%   74.25ms
Requests/sec:  12893.46
