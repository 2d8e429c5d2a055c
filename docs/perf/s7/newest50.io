requests 3000 p50_us 18.1 p99_us 91.8 mean_us 22.5 bytes_per_answer 60514
(reqlat: one connection, 3,000 sequential GET /v1/sessions/big/events?offset=199950&limit=50 after the perf window)
requests 3000 p50_us 20.1 p99_us 28.1 mean_us 20.6 bytes_per_answer 60513
(the same 50 events 5,000 back: rendered envelopes not in the event cache on the first pass)
