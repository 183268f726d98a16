#!/usr/bin/env python3
"""User-space instructions per request, counted by valgrind's callgrind: a
figure that does not move with the machine's load, for comparing changes.

Runs nginx (one process, master_process off) under callgrind twice per path,
with 1 and with N+1 keepalive requests after a warm-up; the difference / N is
the per-request cost (nginx + module + CPython + libc; the kernel is not
counted). Run after `make build` (needs valgrind):

    bench/instructions.py [--requests 2000] [PATH ...]   default: /ret /hello /10k

A path with a `buffered:` prefix goes to a server with `wsgi_buffering on`
(`buffered:/stream`: the 100-chunk stream, batched). `--http LINES` adds
directives to the http block (`--http "wsgi_max_rss 64g;"`: what a guard
costs).
"""

import argparse
import os
import re
import signal
import socket
import sys

import nginx

WORK = os.path.join(nginx.ROOT, "target", "bench", "instructions")
PORT = 18140
BUFFERED_PORT = 18141

HTTP = """    access_log off;
    keepalive_requests 1000000;
    wsgi_python_path {root}/bench;
    {extra}
    server {{
        listen 127.0.0.1:{port};
        location / {{ wsgi_pass apps:application; }}
        location = /ret {{ return 200 "Hello, world!"; }}
    }}
    server {{
        listen 127.0.0.1:{buffered_port};
        location / {{ wsgi_buffering on; wsgi_pass apps:application; }}
    }}"""
SERVER = None


def server(extra):
    """One process (no master): the one valgrind runs is the one that serves."""
    http = HTTP.format(root=nginx.ROOT, extra=extra, port=PORT, buffered_port=BUFFERED_PORT)
    return nginx.Nginx(WORK, "nginx", http, master=False, connections=64)


def requests(path, n):
    """`n` keepalive requests for `path`, each response read to its end."""
    port = PORT
    if path.startswith("buffered:"):
        port, path = BUFFERED_PORT, path[len("buffered:"):]
    s = socket.create_connection(("127.0.0.1", port))
    req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n".encode()
    for _ in range(n):
        s.sendall(req)
        buf = b""
        while True:
            data = s.recv(1 << 20)
            if not data:
                sys.exit(f"{path}: the connection closed mid-response")
            buf += data
            head, sep, body = buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            length = re.search(rb"^content-length: *(\d+)", head, re.I | re.M)
            if (len(body) >= int(length.group(1))) if length else body.endswith(b"\r\n0\r\n\r\n"):
                break
    s.close()


def total_instructions(path, n):
    # One file per process (%p): nginx's, and its wsgi watcher's (a forked
    # process, which valgrind follows too). nginx's is the big one.
    os.makedirs(WORK, exist_ok=True)
    for name in os.listdir(WORK):
        if name.startswith("callgrind.out"):
            os.unlink(os.path.join(WORK, name))
    out = os.path.join(WORK, "callgrind.out.%p")
    # valgrind's own report would fill the terminal: quiet.
    SERVER.start(PORT, wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"], quiet=True,
                 timeout=60)
    try:
        requests(path, 20)  # warm-up: imports, first allocations
        requests(path, n)
    finally:
        # SIGQUIT: graceful, so callgrind writes its file. Under valgrind a
        # signal can be lost (one process, no timers): send it until nginx is gone.
        SERVER.stop(signal.SIGQUIT, until_gone=True)
    totals = []
    for name in os.listdir(WORK):
        if name.startswith("callgrind.out."):
            with open(os.path.join(WORK, name)) as f:
                summary = re.search(r"^summary: (\d+)", f.read(), re.M)
            if summary:  # (the watcher's may still be being written)
                totals.append(int(summary.group(1)))
    return max(totals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--http", default="", help="more directives for the http block")
    ap.add_argument("paths", nargs="*", default=["/ret", "/hello", "/10k"])
    args = ap.parse_args()
    global SERVER
    SERVER = server(args.http)
    extra = f", with: {args.http}" if args.http else ""
    print(f"user-space instructions per request (callgrind, {args.requests} keepalive requests{extra})")
    for path in args.paths:
        one = total_instructions(path, 1)
        many = total_instructions(path, args.requests + 1)
        label = "nginx return 200" if path == "/ret" else f"ngx_wsgi {path}"
        print(f"  {label:20} {(many - one) / args.requests:10.0f}")


if __name__ == "__main__":
    sys.exit(main())
