#!/usr/bin/env python3
"""The soak (`make soak`): nginx with the module (target/nginx, 2 workers)
under a long mixed load, then storms of aborting clients, then reloads
under load. Every response is checked; the workers' memory, descriptors
and Python objects are compared across the run; every iterable the module
was handed must have been closed (bench/soak_app.py counts them).

1. Warm-up: 50,000 requests of the mix, then the baseline of each worker:
   RSS, open descriptors, Python's gc-tracked objects and allocated blocks.
2. Soak: REQUESTS requests of the mix over keep-alive connections: hello,
   10k, streams (flushed midway), 32 KiB uploads, app errors (500), an
   iterable that raises midway (the connection must be cut, not ended as if
   complete), and clients that leave mid-stream (half with a RST); half of
   them inline, half in thread mode (`wsgi_threads 4`, unbuffered uploads).
   Then the same figures again: RSS growth, descriptors, objects.
3. Storms: ABORTS clients that leave mid-stream, 200 at a time, inline,
   then as many in thread mode (after a first storm of 200 of each); the
   same figures before and after.
4. Reloads: RELOAD_SECONDS of the mix, one request per connection, with
   `nginx -s reload` every 3 s: no request may fail, and every old worker
   must exit.

At the end every counted iterable must be closed, and error_log may hold
no alert, crit or emerg line. Exits 1 when a check fails.

    bench/soak.py [--warmup 50000] [--requests 1000000] [--aborts 10000] [--reload-seconds 60]
"""

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

import nginx
from nginx import ROOT

WORK = os.path.join(ROOT, "target", "soak")
COUNTS = os.path.join(WORK, "counts")
PORT = 18200
THREADS = 4
CLIENT_PROCS, CONNS = 2, 16  # client processes, connections each
WARMUP = 50_000
STORM_PARALLEL = 200  # storm clients connected at once
# Growth allowed after the warm-up (the goal) and, for Python's
# objects, a margin for caches that settle late (re, functools, the
# allocator's free lists are not objects).
RSS_GROWTH_KIB = 5 * 1024
OBJECT_GROWTH = 1000

# The mix, one entry per request in turn: 35 % hello, 20 % 10k, 15 %
# streams, 10 % uploads, 5 % app errors, 5 % broken iterables, 10 % aborts.
MIX = ["hello"] * 7 + ["10k"] * 4 + ["stream"] * 3 + ["upload"] * 2 + ["error", "broken"] + ["abort"] * 2
UPLOAD = bytes(range(256)) * 128  # 32 KiB: more than client_body_buffer_size, so a temp file
UPLOAD_ANSWER = b"%d %d" % (len(UPLOAD), zlib.crc32(UPLOAD))
EXPECTED = {  # kind: (status, body)
    "hello": (200, b"Hello, world!"),
    "10k": (200, b"x" * 10240),
    "stream": (200, b"s" * 16384),
    "upload": (200, UPLOAD_ANSWER),
    "error": (500, None),
}


def conf():
    return f"""    access_log off;
    default_type application/octet-stream;
    wsgi_python_path {os.path.join(ROOT, "bench")};
    client_max_body_size 1m;
    server {{
        listen 127.0.0.1:{PORT} backlog=4096;
        location /i/ {{ wsgi_pass soak_app:application; }}
        location /t/ {{
            wsgi_threads {THREADS};
            wsgi_request_buffering off;
            wsgi_pass soak_app:application;
        }}
    }}"""


class Unexpected(Exception):
    pass


class Cut(Exception):
    """The connection ended inside a response; `body`: what came of it."""

    def __init__(self, status, body):
        super().__init__(f"cut after {len(body)} body bytes")
        self.status, self.body = status, body


async def read_response(reader):
    """(status, headers, body) of one response; Cut when the connection
    ends inside its body, IncompleteReadError inside its head."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    parts = []
    try:
        if "content-length" in headers:
            parts.append(await reader.readexactly(int(headers["content-length"])))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers: the empty line
                    break
                parts.append((await reader.readexactly(size + 2))[:-2])
        else:
            parts.append(await reader.read())
    except asyncio.IncompleteReadError as e:
        raise Cut(status, b"".join(parts) + e.partial)
    return status, headers, b"".join(parts)


def request_bytes(mode, kind, close):
    path = f"/{mode}/{'long' if kind == 'abort' else kind}"
    connection = "Connection: close\r\n" if close else ""
    if kind == "upload":
        return (f"POST {path} HTTP/1.1\r\nHost: soak\r\n{connection}Content-Length: {len(UPLOAD)}\r\n\r\n"
                .encode() + UPLOAD)
    return f"GET {path} HTTP/1.1\r\nHost: soak\r\n{connection}\r\n".encode()


async def one(conn, mode, kind, close, rst):
    """Sends one request on `conn` ([reader, writer] or Nones: it connects)
    and checks its answer; raises Unexpected. Returns whether the
    connection may be used again."""
    if conn[0] is None:
        conn[0], conn[1] = await asyncio.open_connection("127.0.0.1", PORT)
    reader, writer = conn
    writer.write(request_bytes(mode, kind, close))
    if kind == "abort":
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise Unexpected(f"abort: {head[:40]!r}")
        if not await reader.read(1):
            raise Unexpected("abort: no body")
        if rst:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if kind == "broken":
        try:
            status, _, body = await read_response(reader)
        except Cut as cut:
            # Two chunks of 1 KiB (maybe less of the second): never more.
            if cut.status != 200 or not 1024 <= len(cut.body) <= 2048:
                raise Unexpected(f"broken: {cut.status}, cut after {len(cut.body)} bytes")
            return False
        raise Unexpected(f"broken: ended as if complete ({status}, {len(body)} bytes)")
    try:
        status, headers, body = await read_response(reader)
    except Cut as cut:
        raise Unexpected(f"{mode}/{kind}: {cut.status}, the connection ended after {len(cut.body)} bytes")
    want_status, want_body = EXPECTED[kind]
    if status != want_status or (want_body is not None and body != want_body):
        raise Unexpected(f"{mode}/{kind}: {status}, {len(body)} bytes: {body[:60]!r}")
    return not close and headers.get("connection", "keep-alive").lower() != "close"


async def drive(first, count, conns, close, deadline):
    """Requests first .. first+count-1 of the mix (or, with a deadline,
    from `first` on until then) over `conns` connections; returns (done
    per kind, failures, first failure messages)."""
    state = {"next": first, "done": {}, "failures": 0, "messages": []}
    end = first + count

    async def connection():
        conn = [None, None]
        while True:
            i = state["next"]
            if (deadline is None and i >= end) or (deadline is not None and time.monotonic() > deadline):
                break
            state["next"] += 1
            kind = MIX[i % len(MIX)]
            mode = "it"[(i // len(MIX)) % 2]
            reuse = False
            try:
                reuse = await one(conn, mode, kind, close, rst=(i // len(MIX)) % 4 < 2)
                state["done"][kind] = state["done"].get(kind, 0) + 1
            except (Unexpected, Cut, OSError, ValueError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError) as e:
                state["failures"] += 1
                if len(state["messages"]) < 5:
                    state["messages"].append(f"request {i}: {type(e).__name__}: {e}")
            if not reuse and conn[1] is not None:
                conn[1].close()
                conn[0] = conn[1] = None
        if conn[1] is not None:
            conn[1].close()

    await asyncio.gather(*(connection() for _ in range(conns)))
    return state["done"], state["failures"], state["messages"]


def client_process(args):
    first, count, conns, close, seconds = args
    deadline = time.monotonic() + seconds if seconds else None
    return asyncio.run(drive(first, count, conns, close, deadline))


def load(count, close=False, seconds=None, first=0, on_tick=None):
    """Runs `count` requests of the mix (or `seconds` of it) from
    CLIENT_PROCS processes; returns (done per kind, failures, messages,
    seconds taken). on_tick() is called about every second meanwhile."""
    # Each process its own range of indices; with a time limit, ranges far
    # apart, so that each walks the whole mix.
    share = 10**9 if seconds else count // CLIENT_PROCS
    jobs = [(first + n * share, share, CONNS, close, seconds) for n in range(CLIENT_PROCS)]
    start = time.monotonic()
    with multiprocessing.Pool(CLIENT_PROCS) as pool:
        pending = pool.map_async(client_process, jobs)
        while not pending.ready():
            pending.wait(1)
            if on_tick:
                on_tick()
        results = pending.get()
    done, failures, messages = {}, 0, []
    for d, f, m in results:
        for k, v in d.items():
            done[k] = done.get(k, 0) + v
        failures += f
        messages += m
    return done, failures, messages, time.monotonic() - start


async def storm_async(mode, clients, parallel):
    """`clients` connections that each ask for /long and leave after its
    first bytes (every other one with a RST); returns the failures."""
    failures, messages = 0, []
    sem = asyncio.Semaphore(parallel)

    async def client(n):
        nonlocal failures
        async with sem:
            conn = [None, None]
            try:
                await one(conn, mode, "abort", close=False, rst=n % 2 == 0)
            except (Unexpected, OSError, asyncio.IncompleteReadError) as e:
                failures += 1
                if len(messages) < 5:
                    messages.append(f"{type(e).__name__}: {e}")
            finally:
                if conn[1] is not None:
                    conn[1].close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return failures, messages


def counts():
    """(iterables created, iterables closed) so far."""
    sizes = []
    for name in ("created", "closed"):
        try:
            sizes.append(os.path.getsize(os.path.join(COUNTS, name)))
        except OSError:
            sizes.append(0)
    return tuple(sizes)


def wait_all_closed(timeout=30):
    """Waits until every counted iterable is closed; returns the counts."""
    deadline = time.monotonic() + timeout
    while True:
        created, closed = counts()
        if created == closed or time.monotonic() > deadline:
            return created, closed
        time.sleep(0.2)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def objects(workers, tries=400):
    """{pid: (gc-tracked objects, allocated blocks)} of every worker, each
    asked on a new connection until all have answered."""
    found = {}
    for _ in range(tries):
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
            s.sendall(b"GET /i/objects HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        pid, objs, blocks = (int(x) for x in data.split(b"\r\n\r\n", 1)[1].split())
        found[pid] = (objs, blocks)
        if set(workers) <= set(found):
            return {pid: found[pid] for pid in workers}
    sys.exit(f"soak: no answer from every worker in {tries} tries ({sorted(found)} of {workers})")


def snapshot(server):
    """Each worker's figures once the load has stopped: {pid: {...}}."""
    workers = sorted(server.workers())
    time.sleep(1)  # nginx closes what the clients left
    objs = objects(workers)
    return {pid: {"rss": rss_kib(pid), "fds": fds(pid), "objects": objs[pid][0], "blocks": objs[pid][1]}
            for pid in workers}


class Report:
    def __init__(self):
        self.lines, self.failed = [], []

    def say(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def check(self, ok, what):
        self.say(f"- {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            self.failed.append(what)


def compare(report, before, after, what):
    if sorted(before) != sorted(after):
        report.check(False, f"{what}: the workers changed ({sorted(before)} -> {sorted(after)})")
        return
    for pid in sorted(before):
        b, a = before[pid], after[pid]
        growth = a["rss"] - b["rss"]
        report.say(f"  worker {pid}: RSS {b['rss'] / 1024:.1f} -> {a['rss'] / 1024:.1f} MiB, "
                   f"descriptors {b['fds']} -> {a['fds']}, objects {b['objects']} -> {a['objects']}, "
                   f"blocks {b['blocks']} -> {a['blocks']}")
        report.check(growth <= RSS_GROWTH_KIB, f"{what}: worker {pid}'s RSS grew {growth} KiB "
                     f"(at most {RSS_GROWTH_KIB})")
        report.check(a["fds"] == b["fds"], f"{what}: worker {pid}'s descriptors back to {b['fds']}")
        report.check(a["objects"] - b["objects"] <= OBJECT_GROWTH,
                     f"{what}: worker {pid}'s Python objects grew by {a['objects'] - b['objects']} "
                     f"(at most {OBJECT_GROWTH})")


def show_load(report, what, done, failures, messages, took):
    total = sum(done.values()) + failures
    report.say(f"{what}: {total:,} requests in {took:.0f} s ({total / took:,.0f}/s): "
               + ", ".join(f"{k} {v:,}" for k, v in sorted(done.items())))
    for m in messages:
        report.say(f"  {m}")
    report.check(failures == 0, f"{what}: {failures} unexpected failures")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--aborts", type=int, default=10_000)
    parser.add_argument("--reload-seconds", type=int, default=60)
    args = parser.parse_args()
    if not os.path.exists(nginx.MODULE):
        sys.exit("soak: build first (scripts/build)")
    subprocess.run(["rm", "-rf", WORK], check=True)
    os.makedirs(COUNTS)
    server = nginx.Nginx(WORK, "soak", conf(), workers=2, log_level="error")
    report = Report()
    version = subprocess.run([server.binary, "-v"], capture_output=True, text=True).stderr.strip()
    report.say(f"soak: {version}, 2 workers, {CLIENT_PROCS} x {CONNS} "
               f"keep-alive clients, {os.cpu_count()} cores")
    server.start(PORT)
    try:
        run(server, args, report)
    finally:
        server.stop()
    with open(server.error_log, errors="replace") as f:
        log = f.read()
    levels = {lvl: len(re.findall(rf"^\S+ \S+ \[{lvl}\]", log, re.M)) for lvl in ("emerg", "alert", "crit", "error")}
    report.say(f"error_log: {levels['error']:,} error lines (the planned app errors), "
               f"{levels['alert']} alert, {levels['crit']} crit, {levels['emerg']} emerg")
    report.check(levels["alert"] + levels["crit"] + levels["emerg"] == 0, "no alert, crit or emerg line")
    if report.failed:
        report.say(f"soak: {len(report.failed)} checks FAILED")
        sys.exit(1)
    report.say("soak: every check passed")


def run(server, args, report):
    done, failures, messages, took = load(args.warmup)
    show_load(report, "warm-up", done, failures, messages, took)
    wait_all_closed()
    base = snapshot(server)

    peak = {}

    def sample():
        for pid in server.workers():
            peak[pid] = max(peak.get(pid, 0), rss_kib(pid))

    done, failures, messages, took = load(args.requests, first=args.warmup, on_tick=sample)
    show_load(report, "soak", done, failures, messages, took)
    created, closed = wait_all_closed()
    report.check(created == closed, f"soak: {closed:,} of {created:,} iterables closed")
    after = snapshot(server)
    report.say("  peak RSS during the soak: " + ", ".join(f"{pid}: {kib / 1024:.1f} MiB" for pid, kib in
                                                           sorted(peak.items())))
    compare(report, base, after, "soak")

    # A first, small storm of each kind: nginx's and the allocator's
    # memory for 200 connections at once is reached before the baseline.
    for mode in ("i", "t"):
        asyncio.run(storm_async(mode, STORM_PARALLEL, STORM_PARALLEL))
    wait_all_closed()
    before_storm, at_start = snapshot(server), counts()
    for mode, label in (("i", "inline"), ("t", "threads")):
        start = time.monotonic()
        failures, messages = asyncio.run(storm_async(mode, args.aborts, STORM_PARALLEL))
        took = time.monotonic() - start
        report.say(f"storm ({label}): {args.aborts:,} clients left mid-stream in {took:.1f} s")
        for m in messages:
            report.say(f"  {m}")
        report.check(failures == 0, f"storm ({label}): {failures} unexpected failures")
    created, closed = wait_all_closed()
    report.check(created - at_start[0] == 2 * args.aborts and created == closed,
                 f"storms: {closed - at_start[1]:,} of {created - at_start[0]:,} iterables closed "
                 f"({2 * args.aborts:,} clients)")
    compare(report, before_storm, snapshot(server), "storms")

    masters_workers = set(server.workers())
    reloads = [0]
    last = [time.monotonic()]

    def reload():
        if time.monotonic() - last[0] >= 3:
            os.kill(server.pid, signal.SIGHUP)
            reloads[0] += 1
            last[0] = time.monotonic()

    done, failures, messages, took = load(0, close=True, seconds=args.reload_seconds, on_tick=reload)
    show_load(report, f"reloads ({reloads[0]} of them, one request per connection)", done, failures, messages,
              took)
    deadline = time.monotonic() + 30
    while len(nginx.children(server.pid)) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    left = nginx.children(server.pid)
    report.check(len(left) == 2 and not set(left) & masters_workers,
                 f"reloads: the old workers exited ({len(left)} workers left)")
    created, closed = wait_all_closed()
    report.check(created == closed, f"in all: {closed:,} of {created:,} iterables closed")


if __name__ == "__main__":
    main()
