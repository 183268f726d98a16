#!/usr/bin/env python3
"""Streaming figures for ngx_wsgi (issue: streaming engine).

1. Slow client: a 300 MiB streamed response to a client that reads 64 KiB
   every 50 ms; the worker's RSS is sampled while it runs. The generator
   could produce all 300 MiB in well under a second, so RSS growth shows
   whether the module buffers (it must not) or suspends the generator.
2. Time to first chunk: an app yields a chunk, then sleeps 1 s; how long
   until the first chunk reaches the client: plain HTTP/1.1, through gzip,
   and over HTTP/2 (curl). Median of 5.

Run after `make build`:  bench/streaming.py [--seconds 30 | --full]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import zlib

import nginx

WORK = os.path.join(nginx.ROOT, "target", "bench", "streaming")
PORT, H2PORT = 18090, 18091

HTTP = f"""    access_log off;
    wsgi_python_path {nginx.ROOT}/bench;
    gzip_types text/plain;
    gzip_min_length 1;
    server {{
        listen 127.0.0.1:{PORT};
        location /big {{ wsgi_pass streaming_apps:big; }}
        location /pause {{ wsgi_pass streaming_apps:pause; }}
        location /gz/pause {{ gzip on; wsgi_pass streaming_apps:pause; }}
    }}
    server {{
        listen 127.0.0.1:{H2PORT};
        http2 on;
        location /pause {{ wsgi_pass streaming_apps:pause; }}
    }}"""


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request(path, port=PORT, extra=""):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n".encode())
    return s


def slow_client(worker, seconds, full):
    # Warm up: Python imports the app and touches its pages once.
    s = request("/pause")
    while s.recv(65536):
        pass
    s.close()
    base = rss_kib(worker)
    s = request("/big")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    total, peak, start = 0, base, time.monotonic()
    deadline = None if full else start + seconds
    next_sample = start
    while deadline is None or time.monotonic() < deadline:
        got = 0
        while got < 65536:
            data = s.recv(65536 - got)
            if not data:
                break
            got += len(data)
        if not got:
            break
        total += got
        now = time.monotonic()
        if now >= next_sample:
            peak = max(peak, rss_kib(worker))
            next_sample = now + 0.5
        time.sleep(0.05)
    peak = max(peak, rss_kib(worker))
    elapsed = time.monotonic() - start
    s.close()
    return base, peak, total, elapsed


def first_chunk_http1(path, gzip=False):
    extra = "Accept-Encoding: gzip\r\n" if gzip else ""
    t0 = time.monotonic()
    s = request(path, extra=extra)
    data = b""
    while True:
        data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        if not _:
            continue
        # Undo the chunked framing of what arrived so far.
        payload, rest = b"", body
        while b"\r\n" in rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if len(rest) < n:
                break
            payload, rest = payload + rest[:n], rest[n + 2:]
        text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload) if gzip else payload
        if b"first chunk" in text:
            took = time.monotonic() - t0
            # Read to the end, so the next request finds the worker free
            # (the app's pause runs on the worker's event loop).
            while s.recv(65536):
                pass
            s.close()
            return took


def first_chunk_http2():
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge", "-m", "5",
         "-w", "%{time_starttransfer}", f"http://127.0.0.1:{H2PORT}/pause"],
        capture_output=True, text=True, check=True)
    return float(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30, help="how long the slow client reads")
    ap.add_argument("--full", action="store_true", help="read all 300 MiB (about 4 minutes)")
    args = ap.parse_args()
    if not os.access(nginx.NGINX, os.X_OK):
        sys.exit("run `make build` first")
    server = nginx.Nginx(WORK, "nginx", HTTP, daemon=True, log_level="notice", connections=1024)
    server.start(PORT)
    try:
        base, peak, total, elapsed = slow_client(server.workers()[0], args.seconds, args.full)
        print("slow client (300 MiB response, client reads 64 KiB every 50 ms)")
        print(f"  read {total / 2**20:.1f} MiB in {elapsed:.1f} s")
        print(f"  worker RSS: {base / 1024:.1f} MiB before, {peak / 1024:.1f} MiB peak, "
              f"growth {(peak - base) / 1024:.1f} MiB")
        print("time to first chunk (the app then pauses 1 s), median of 5")
        for name, fn in [("HTTP/1.1 chunked", lambda: first_chunk_http1("/pause")),
                         ("HTTP/1.1 gzip", lambda: first_chunk_http1("/gz/pause", gzip=True)),
                         ("HTTP/2", first_chunk_http2)]:
            times = [fn() for _ in range(5)]
            print(f"  {name:18} {statistics.median(times) * 1000:7.2f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
