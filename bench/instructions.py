#!/usr/bin/env python3
"""User-space instructions per request, counted by valgrind's callgrind: a
figure that does not move with the machine's load, for comparing changes.

Runs nginx (one process, master_process off) under callgrind twice per path,
with 1 and with N+1 keepalive requests after a warm-up; the difference / N is
the per-request cost (nginx + module + CPython + libc; the kernel is not
counted). Run after `make build` (needs valgrind):

    bench/instructions.py [--requests 2000] [PATH ...]   default: /ret /hello /10k

A path with a `buffered:` prefix goes to a server with `wsgi_buffering on`
(`buffered:/stream`: the 100-chunk stream, batched).
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = os.path.join(ROOT, "target", "nginx")
WORK = os.path.join(ROOT, "target", "bench", "instructions")
PORT = 18140
BUFFERED_PORT = 18141

CONF = f"""
load_module {PREFIX}/modules/ngx_http_wsgi_module.so;
{"user root;" if os.geteuid() == 0 else ""}
daemon off;
master_process off;
worker_processes 1;
error_log {WORK}/error.log error;
pid {WORK}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    wsgi_python_path {ROOT}/bench;
    server {{
        listen 127.0.0.1:{PORT};
        location / {{ wsgi_pass apps:application; }}
        location = /ret {{ return 200 "Hello, world!"; }}
    }}
    server {{
        listen 127.0.0.1:{BUFFERED_PORT};
        location / {{ wsgi_buffering on; wsgi_pass apps:application; }}
    }}
}}
"""


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
    out = os.path.join(WORK, "callgrind.out")
    if os.path.exists(out):
        os.unlink(out)
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             os.path.join(PREFIX, "sbin", "nginx"), "-p", PREFIX,
                             "-c", os.path.join(WORK, "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    requests(path, 20)  # warm-up: imports, first allocations
    requests(path, n)
    with open(os.path.join(WORK, "nginx.pid")) as f:
        pid = int(f.read())
    # SIGQUIT: graceful, callgrind writes its file. Under valgrind a signal
    # can be taken just before nginx blocks in epoll_wait, and then nothing
    # wakes it (one process, no timers): send it again until nginx is gone.
    while True:
        os.kill(pid, 3)
        try:
            proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            pass
    with open(out) as f:
        return int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("paths", nargs="*", default=["/ret", "/hello", "/10k"])
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, "nginx.conf"), "w") as f:
        f.write(CONF)
    print(f"user-space instructions per request (callgrind, {args.requests} keepalive requests)")
    for path in args.paths:
        one = total_instructions(path, 1)
        many = total_instructions(path, args.requests + 1)
        label = "nginx return 200" if path == "/ret" else f"ngx_wsgi {path}"
        print(f"  {label:20} {(many - one) / args.requests:10.0f}")


if __name__ == "__main__":
    sys.exit(main())
