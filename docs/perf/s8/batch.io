window 10s: 543 commits, 225600 events (reel_store_*_total); load average 13.24 15.16 12.04
syscr 8605 syscw 15089 write_bytes 689885184 over 12.1 s
per event: 3058 bytes written to the block layer, 0.04 read + 0.07 write syscalls
per commit: 415.5 events, 1270507 bytes written
server CPU: 3.01 s in 12.1 s (0.25 cores), 13.34 us per event (perf adds its own)
wrk (whole run, includes the warm-up and the perf window; requests of 100 events):
    Latency   326.92ms  201.47ms   1.12s    71.08%
  Latency Distribution
     50%  307.77ms
     99%  929.50ms
Requests/sec:    191.66
