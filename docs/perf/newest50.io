requests 3000 p50_us 29.9 p99_us 54.9 mean_us 30.6 bytes_per_answer 60514
(reqlat: one connection, 3,000 sequential GET /v1/sessions/big/events?offset=199950&limit=50 after the perf window)
requests 3000 p50_us 84.3 p99_us 2329.5 mean_us 138.1 bytes_per_answer 60513
(the same 50 events 5,000 back: rendered envelopes not in the event cache on the first pass)
