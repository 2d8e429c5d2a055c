#!/usr/bin/env python3
"""first_read.py -- restart-to-serving time: start a server, time its first served read.

  bench/peers/first_read.py (--http PORT PATH | --resp PORT CMD...) -- SERVER ARGV...

Starts SERVER ARGV (its output to SERVER.log in the current directory is not kept; stdout
and stderr go to /dev/null), then from the moment of the spawn repeatedly tries the read
on 127.0.0.1:PORT, one attempt per millisecond at most:
  --http  GET PATH must answer 200 (a store still opening refuses or answers 503);
  --resp  the command (e.g. XREVRANGE s + - COUNT 1) must answer a non-error reply (Redis
          answers -LOADING while it loads its AOF/RDB).
Prints "restart_ms N", then stops the server (SIGTERM, then SIGKILL after 60 s) and waits
for it. Gives up after 900 s.
"""
import os
import signal
import socket
import subprocess
import sys
import time


def http_ok(port, path):
    with socket.create_connection(("127.0.0.1", port), 0.5) as s:
        s.settimeout(5)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        head = s.recv(64)
        return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")


def resp_ok(port, cmd):
    enc = b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(c), c) for c in (x.encode() for x in cmd))
    with socket.create_connection(("127.0.0.1", port), 0.5) as s:
        s.settimeout(5)
        s.sendall(enc)
        first = s.recv(1)
        return first not in (b"-", b"")


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help") or "--" not in a:
        print(__doc__)
        sys.exit(0 if a and a[0] in ("-h", "--help") else 2)
    sep = a.index("--")
    probe, server = a[:sep], a[sep + 1:]
    port = int(probe[1])
    if probe[0] == "--http":
        def check():
            return http_ok(port, probe[2])
    elif probe[0] == "--resp":
        def check():
            return resp_ok(port, probe[2:])
    else:
        sys.exit("first_read: --http or --resp expected")
    t0 = time.monotonic()
    p = subprocess.Popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ms = None
    try:
        while time.monotonic() - t0 < 900:
            if p.poll() is not None:
                sys.exit("first_read: the server exited with %s" % p.returncode)
            try:
                if check():
                    ms = (time.monotonic() - t0) * 1000
                    break
            except OSError:
                pass
            time.sleep(0.001)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if ms is None:
        sys.exit("first_read: no successful read in 900 s")
    print("restart_ms %.1f" % ms)


if __name__ == "__main__":
    main()
