#!/usr/bin/env python3
"""ngx_wsgi side by side with the servers people use today (`make bench`).

Every server runs exactly one worker process pinned to core 1 (`taskset -c 1`,
nginx in front included); wrk runs with one thread pinned to core 0. Each
cell: a warm-up, then 3 runs; the table shows the medians of req/s, p99
latency and server-core CPU microseconds per request (the busy share of
core 1 from /proc/stat x 10^6 / req/s), the figure that still means something
when one wrk thread is the bottleneck. Status and body size are checked
before each cell, and wrk's non-2xx and socket-error counts after each run.

Each cell also splits the µs/req into user space and kernel (from the
same /proc/stat ticks), which shows what dominates a case.

ngx_wsgi runs twice: inline (the default: the app runs on the worker's own
thread) and in thread mode (`wsgi_threads 4`), so the cost of the hand-off
to a pool thread shows next to the inline figures.

The slow-client case: 200 clients each read a 50 MiB streamed response at
1 MiB/s; the peak RSS of the server's processes (all of them, nginx
included) over their idle RSS is reported.

Writes bench/RESULTS.md (keeping the section bench/threads.py adds). Run
`make bench`, or after it:
    bench/run.py [--quick] [--only NAME,...] [--runs 3] [--seconds 10]
"""

import argparse
import asyncio
import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import nginx
from nginx import MODULE, NGINX, PREFIX, ROOT, ensure_free, wait_port

BENCH = os.path.join(ROOT, "bench")
VENV = os.path.join(ROOT, "target", "bench-venv")
WORK = os.path.join(ROOT, "target", "bench", "run")
SERVER_CORE, CLIENT_CORE = "1", "0"
FRONT, BACK = 18100, 18101  # nginx's port, the app server's port
THREADS = 4  # the pool of the "ngx_wsgi-threads" variant; see servers()
CASES = {  # name: (path, expected body size)
    "hello": ("/hello", 13),
    "10k": ("/10k", 10240),
    "stream": ("/stream", 102400),
    "1m": ("/1m", 1 << 20),
}


# Every nginx here starts its http {} body with these.
HTTP_COMMON = """    access_log off;
    default_type application/octet-stream;
    keepalive_requests 100000;
"""


# nginx in front of an app server on BACK, with keepalive connections to it,
# as a deployment has (every "nginx → proxy_pass" row).
PROXY = f"""    upstream app {{ server 127.0.0.1:{BACK}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def static_files():
    root = os.path.join(WORK, "static")
    os.makedirs(root, exist_ok=True)
    sys.path.insert(0, BENCH)
    import apps  # noqa: E402  the same bytes the app serves
    for name, data in [("hello", apps.HELLO), ("10k", apps.TEN_K), ("1m", apps.ONE_M)]:
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    return root


class Server:
    """One configuration under test: the commands that start it, and the
    cases it serves (a case it does not serve is left blank)."""

    def __init__(self, name, label, nginx=None, app=None, port=FRONT, cases=None, path_prefix="",
                 backend_port=None, backend_socket=None, work=WORK, debian=False):
        self.name, self.label = name, label
        self.work = work  # where its nginx.conf, logs and pid file go
        self.nginx_http = nginx  # http{} body, or None when there is no nginx
        self.nginx = None        # its nginx.Nginx, once started
        self.app_cmd = app       # command of the app server, or None
        self.port = port
        self.cases = cases or list(CASES)
        self.path_prefix = path_prefix
        self.backend_port = backend_port  # the app server's TCP port behind nginx
        self.backend_socket = backend_socket  # or its unix socket
        self.procs = []  # the app server
        self.debian = debian  # Debian's nginx and the packaged module, not ours

    def describe(self):
        out = []
        if self.app_cmd:
            out.append("    " + " ".join(self.app_cmd))
        if self.nginx_http:
            out.append("    nginx.conf http {} body:")
            out += ["    " + line for line in self.nginx_http.strip("\n").splitlines()]
        return "\n".join(out)

    def start(self):
        pin = ["taskset", "-c", SERVER_CORE]
        if self.app_cmd:
            self.procs.append(subprocess.Popen(pin + self.app_cmd, cwd=BENCH, start_new_session=True,
                                               stdout=subprocess.DEVNULL, stderr=open(f"{self.work}/{self.name}.app.log", "w")))
        if self.nginx_http:
            where = {"binary": nginx.DEBIAN_NGINX, "module": nginx.DEBIAN_MODULE} if self.debian else {}
            self.nginx = nginx.Nginx(self.work, self.name, HTTP_COMMON + self.nginx_http, **where)
            self.nginx.start(self.port, wrapper=pin)
        wait_port(self.port)
        if self.backend_port:
            wait_port(self.backend_port)
        for _ in range(200):
            if not self.backend_socket or os.path.exists(self.backend_socket):
                break
            time.sleep(0.1)

    def close(self):
        self.stop()

    def stop(self):
        if self.nginx:
            self.nginx.stop()
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        time.sleep(0.5)

    def pids(self):
        """Every process of this server: the started ones and their children."""
        seen, todo = [], [p.pid for p in self.procs] + ([self.nginx.pid] if self.nginx else [])
        while todo:
            pid = todo.pop()
            seen.append(pid)
            try:
                todo += nginx.children(pid)
            except OSError:
                pass
        return seen

    def rss_kib(self):
        total = 0
        for pid in self.pids():
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total


def servers():
    py = os.path.join(VENV, "bin", "python")
    static = static_files()
    wsgi = f"""    wsgi_python_path {BENCH};
    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        location / {{ wsgi_pass apps:application; }}
    }}"""
    # Thread mode: the same app on a pool of THREADS Python threads in the
    # worker. These cases never wait, so the GIL lets one thread run at a time
    # and the row shows what the hand-off to a pool thread and back costs, not
    # parallelism. 4 is a small pool as people configure one: with 50 clients
    # every thread always has a next request. Measured on 2026-11-30, after
    # the cheaper hand-off (hello / stream, req/s; inline 145k / 4.6k):
    # 1 thread 134k / 29.8k, 4 threads 138k / 28.8k, 16 threads 133k /
    # 26.5k, 64 threads 125k / 26.6k (the thread that holds the GIL runs
    # queued requests back to back, so more threads cost little), so 4
    # neither flatters nor penalises the mode.
    # `sendfile on` (as in Debian's nginx.conf; nginx's default is off):
    # what a slow client cannot take yet goes to the response's temp file
    # (wsgi_max_temp_file_size), which nginx then sends with sendfile
    # instead of reading it into its 2 x 32k output_buffers. It changes
    # nothing else here (the other cases never spill).
    wsgi_threads = f"""    wsgi_python_path {BENCH};
    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        sendfile on;
        location / {{ wsgi_threads {THREADS}; wsgi_pass apps:application; }}
    }}"""
    wsgi_buffered = f"""    wsgi_python_path {BENCH};
    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        location / {{ wsgi_buffering on; wsgi_pass apps:application; }}
    }}"""
    sock = os.path.join(WORK, "uwsgi.sock")
    return [
        Server("nginx-return", "nginx `return 200` (ceiling)", cases=["hello"], nginx=f"""    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        location = /hello {{ default_type text/plain; return 200 "Hello, world!"; }}
    }}"""),
        Server("nginx-static", "nginx static file (ceiling)", cases=["hello", "10k", "1m"], nginx=f"""    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        location / {{ root {static}; }}
    }}"""),
        Server("ngx_wsgi", "ngx_wsgi (this module)", nginx=wsgi),
        Server("ngx_wsgi-threads", f"ngx_wsgi, `wsgi_threads {THREADS}`", nginx=wsgi_threads),
        Server("ngx_wsgi-buffered", "ngx_wsgi, `wsgi_buffering on`", cases=["stream"], nginx=wsgi_buffered),
        # The same configuration in Debian 12's nginx 1.22 with the module
        # from the package (make deb): what an apt user gets.
        Server("ngx_wsgi-debian", "ngx_wsgi in Debian's nginx 1.22 (the .deb)", nginx=wsgi, debian=True),
        Server("ngx_wsgi-debian-threads", f"ngx_wsgi in Debian's nginx, `wsgi_threads {THREADS}`",
               nginx=wsgi_threads, debian=True),
        Server("uwsgi", "nginx → uwsgi_pass (unix) → uWSGI, 1 process",
               app=[os.path.join(VENV, "bin", "uwsgi"), "--socket", sock, "--chmod-socket=666",
                    "--wsgi-file", "apps.py", "--processes", "1", "--disable-logging", "--need-app"],
               backend_socket=sock,
               nginx=f"""    server {{
        listen 127.0.0.1:{FRONT} backlog=4096;
        location / {{ include {PREFIX}/conf/uwsgi_params; uwsgi_pass unix:{sock}; }}
    }}"""),
        Server("gunicorn", "nginx → proxy_pass → gunicorn, 1 sync worker",
               app=[os.path.join(VENV, "bin", "gunicorn"), "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{BACK}",
                    "--backlog", "4096", "apps:application"], nginx=PROXY, backend_port=BACK),
        Server("granian", "granian alone (`--interface wsgi --workers 1`)", port=BACK,
               app=[os.path.join(VENV, "bin", "granian"), "--interface", "wsgi", "--workers", "1",
                    "--host", "127.0.0.1", "--port", str(BACK), "--no-log", "apps:application"]),
        Server("nginx-granian", "nginx → proxy_pass → granian",
               app=[os.path.join(VENV, "bin", "granian"), "--interface", "wsgi", "--workers", "1",
                    "--host", "127.0.0.1", "--port", str(BACK), "--no-log", "apps:application"], nginx=PROXY,
               backend_port=BACK),
        Server("bjoern", "bjoern alone", port=BACK,
               app=[py, "-c", f"import bjoern, apps; bjoern.run(apps.application, '127.0.0.1', {BACK})"]),
    ]


def fetch(port, path, body=None):
    """The body of GET `path` (POST with `body`); raises unless the status
    is 200."""
    method = "GET" if body is None else "POST"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    answer = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{method} {path}: status {resp.status}")
    return answer


def check(port, path, size):
    body = fetch(port, path)
    if len(body) != size:
        raise RuntimeError(f"GET {path}: {len(body)} bytes (want {size})")


def cpu_sample():
    """Ticks of the server core: busy, total, and the busy ones spent in
    user space (the rest is the kernel: syscalls, TCP, softirqs)."""
    for line in open("/proc/stat"):
        if line.startswith(f"cpu{SERVER_CORE} "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            return sum(v[:8]) - idle, sum(v[:8]), v[0] + v[1]
    raise RuntimeError("no per-core line in /proc/stat")


def wrk_cmd(port, path, seconds, conns, timeout=None, script=None):
    """wrk with one thread on the client core; `timeout` (s) raises wrk's 2 s
    default, beyond which a response is counted as a timeout and left out of
    the latency figures; `script`: a Lua file that shapes the requests."""
    return (["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
            + ([f"--timeout={timeout}s"] if timeout else []) + (["-s", script] if script else [])
            + [f"http://127.0.0.1:{port}{path}"])


def parse_wrk(out):
    """wrk's figures: req/s, completed requests, p50 and p99 in ms, and the
    socket timeouts. Raises on a non-2xx response and on connect, read and
    write errors."""
    def ms(pct):
        m = re.search(pct + r"%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if bad or (errors and any(int(x) for x in errors.groups()[:3])):
        raise RuntimeError(f"wrk saw failures:\n{out}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "timeouts": int(errors.group(4)) if errors else 0,
    }


def wrk(port, path, seconds, conns, script=None):
    before = cpu_sample()
    out = subprocess.run(wrk_cmd(port, path, seconds, conns, script=script), capture_output=True, text=True,
                         check=True).stdout
    after = cpu_sample()
    r = parse_wrk(out)
    total = max(1, after[1] - before[1])
    busy, user = (after[0] - before[0]) / total, (after[2] - before[2]) / total
    per_req = (lambda share: share * 1e6 / r["rps"]) if r["rps"] else (lambda share: float("nan"))
    return r["rps"], r["p99_ms"], per_req(busy), per_req(user)


def cell(port, path, runs, seconds, conns, script=None):
    """One cell: a 2 s warm-up, then `runs` runs; the medians of req/s, p99
    ms, µs/req and its user-space part. `script`: as for wrk_cmd."""
    wrk(port, path, 2, conns, script)
    measured = [wrk(port, path, seconds, conns, script) for _ in range(runs)]
    return tuple(statistics.median(r[i] for r in measured) for i in range(4))


def started(server):
    """Starts `server` (its ports must be free); use in a with statement,
    which stops it."""
    for port in (FRONT, BACK):
        ensure_free(port)
    server.start()
    return contextlib.closing(server)


async def slow_reader(port, path, rate, seconds, counter):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    start = time.monotonic()
    step = 65536
    while time.monotonic() - start < seconds:
        data = await reader.read(step)
        if not data:
            break
        counter[0] += len(data)
        await asyncio.sleep(len(data) / rate)
    writer.close()


def temp_bytes(server):
    """Bytes in the temp files the server's processes hold open: ngx_wsgi's
    spill files (thread mode) have no name, so only /proc shows them."""
    total = 0
    for pid in server.pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if "wsgi_temp" in os.readlink(path):
                    total += os.stat(path).st_size
            except OSError:
                pass
    return total


def slow_clients(server, clients, seconds):
    base = server.rss_kib()
    counter, peak, temp = [0], [base], [0]

    async def sample():
        while True:
            peak[0] = max(peak[0], server.rss_kib())
            temp[0] = max(temp[0], temp_bytes(server))
            await asyncio.sleep(0.5)

    async def main():
        sampler = asyncio.ensure_future(sample())
        await asyncio.gather(*[slow_reader(server.port, server.path_prefix + "/slow", 1 << 20, seconds, counter)
                               for _ in range(clients)], return_exceptions=True)
        sampler.cancel()

    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    asyncio.run(main())
    return (peak[0] - base) / 1024, counter[0] / 2**20, temp[0] / 2**20


def machine(wanted=("gunicorn", "uwsgi", "granian", "bjoern")):
    """The machine, nginx, Python and the `wanted` packages' versions."""
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    versions = subprocess.run([os.path.join(VENV, "bin", "pip"), "freeze"], capture_output=True, text=True).stdout
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    wanted = {name.lower() for name in wanted}  # pip spells some names with capitals (Hypercorn)
    pkgs = ", ".join(l for l in versions.split() if l.split("==")[0].lower() in wanted)
    return (f"{model}, {os.cpu_count()} cores, {int(mem) // 1024} MiB; {platform.system()} {platform.release()}; "
            f"{nginx_v}; Python {platform.python_version()} (/usr/bin/python3.11); {pkgs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s per cell, 10 s slow-client case")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--slow-clients", type=int, default=200)
    ap.add_argument("--slow-seconds", type=int, default=30)
    ap.add_argument("--only", help="comma-separated server names")
    ap.add_argument("--output", default=os.path.join(BENCH, "RESULTS.md"))
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds, args.slow_seconds = 1, 3, 10
    chosen = servers()
    if args.only:
        names = args.only.split(",")
        chosen = [s for s in chosen if s.name in names]
    needs = [NGINX, MODULE, os.path.join(VENV, "bin", "granian")]
    if any(s.debian for s in chosen):
        needs += [nginx.DEBIAN_NGINX, nginx.DEBIAN_MODULE]
    for need in needs:
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench`")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    results = {}
    for server in chosen:
        print(f"== {server.label}", flush=True)
        with started(server):
            for case in server.cases:
                path, size = CASES[case]
                check(server.port, path, size)
                c = results[(server.name, case)] = cell(server.port, path, args.runs, args.seconds,
                                                        args.connections)
                print(f"   {case:7} {c[0]:10.0f} req/s  p99 {c[1]:8.2f} ms  {c[2]:8.1f} µs/req "
                      f"({c[3]:.1f} in user space)", flush=True)
            if server.name not in ("nginx-return", "nginx-static", "ngx_wsgi-buffered") and not server.debian:
                growth, mib, temp = slow_clients(server, args.slow_clients, args.slow_seconds)
                results[(server.name, "slow")] = (growth, mib, temp)
                print(f"   slow    peak RSS growth {growth:.1f} MiB, {mib:.0f} MiB delivered "
                      f"in {args.slow_seconds} s, peak temp files {temp:.0f} MiB", flush=True)

    write_results(args, chosen, results)


def configurations(chosen):
    """Each server's label, name and configuration, as RESULTS.md lists them."""
    return [line for s in chosen for line in [f"**{s.label}** (`{s.name}`)", "", "```", s.describe(), "```", ""]]


def table(chosen, results, columns, cell, extra=None):
    """Markdown rows: one per server, `columns` per case filled by
    `cell(result)`, and an optional (heading, cell(server)) column."""
    head = ["server"] + [f"{c} {col}" for c in CASES for col in columns] + ([extra[0]] if extra else [])
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for s in chosen:
        cells = [cell(results[(s.name, c)]) if (s.name, c) in results else " | ".join([""] * len(columns))
                 for c in CASES]
        if extra:
            cells.append(extra[1](s))
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return lines


def write_results(args, chosen, results):
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `bench/run.py` ({'--quick, ' if args.quick else ''}{args.runs} × {args.seconds} s runs "
        f"after a 2 s warm-up, medians; wrk -t1 -c{args.connections}) on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Machine: {machine()}.",
        "",
        f"Each server has one worker process, pinned with its nginx to core {SERVER_CORE}; wrk is pinned to "
        f"core {CLIENT_CORE}. **µs/req** is the busy share of core {SERVER_CORE} × 10⁶ / req/s (lower is "
        "better): the server's whole CPU cost per request, nginx included.",
        "",
    ]

    def slow_cell(s):
        slow = results.get((s.name, "slow"))
        if not slow:
            return ""
        temp = f", {slow[2]:.0f} MiB in temp files at the peak" if slow[2] else ""
        return f"{slow[0]:.1f} MiB ({slow[1]:.0f} MiB sent{temp})"

    lines += table(chosen, results, ["req/s", "p99 ms", "µs/req"],
                   lambda r: f"{r[0]:.0f} | {r[1]:.2f} | {r[2]:.1f}", ("slow-client RSS growth", slow_cell))
    lines += [
        "",
        "Where the server core's time goes: µs per request in user space (the servers' own code, CPython "
        "included) + in the kernel (syscalls, loopback TCP, softirqs), from the same runs. The kernel share "
        "mostly follows the number of writes: a chunk flushed on its own is a TCP segment of its own.",
        "",
    ]
    lines += table(chosen, results, ["user + kernel"], lambda r: f"{r[3]:.1f} + {r[2] - r[3]:.1f}")
    lines += [
        "",
        f"Slow-client case: {args.slow_clients} clients each read a 50 MiB streamed response (64 KiB chunks) at "
        f"1 MiB/s for {args.slow_seconds} s; the figure is the peak RSS of all the server's processes over "
        "their RSS before the clients came; the MiB sent in that time shows how many of the clients a server "
        "kept going at once (uWSGI and gunicorn run one request at a time per process). ngx_wsgi with "
        f"`wsgi_threads {THREADS}` spills what a slow client cannot take yet to a temp file "
        "(`wsgi_max_temp_file_size`, default 1024m), so its threads are free once the app has finished; "
        "the peak of those files' bytes is given (the page cache holds them; they are not RSS).",
        "",
    ]
    if any(s.name == "ngx_wsgi-threads" for s in chosen):
        lines += [
            f"`wsgi_threads {THREADS}`: the app runs on a pool thread and hands its chunks to the worker; chunks "
            "that pile up while the worker is busy go out in one write, so a generator that never waits (stream) "
            "costs about what it costs with `wsgi_buffering on`, where inline each chunk is its own write "
            "(strace: ~3 against ~103 writev per stream response). The hand-off costs the CPU-bound cases "
            "(hello, 10k) a little more per request than inline: requests queued in one event-loop turn wake "
            "one thread, and the thread that holds the GIL runs queued requests back to back, so under load "
            "few requests pay for a wake-up. Thread mode is for apps that wait (I/O, sleep): see the "
            "thread-mode section below (`bench/threads.py`).",
            "",
        ]
    if any(s.debian for s in chosen):
        lines += [
            "`ngx_wsgi in Debian's nginx`: Debian 12's nginx 1.22.1 (`/usr/sbin/nginx`, built by Debian with "
            "`-O2` and `--with-debug`) loading the module from the package `make deb` builds, with the same "
            "configuration as the rows above it: what `apt install` users get, beside the vendored nginx 1.28. "
            "No slow-client case: the module is the same code.",
            "",
        ]
    lines += [
        "## Configurations",
        "",
    ]
    lines += configurations(chosen)
    lines += ["The app is `bench/apps.py` for every server.", ""]
    # Sections other scripts wrote (bench/threads.py) stay, after the table.
    kept = SECTION.findall(open(args.output).read()) if os.path.exists(args.output) else []
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "".join("\n" + block for block in kept))
    print(f"wrote {args.output}")


SECTION = re.compile(r"<!-- begin (?:\S+) -->\n.*?<!-- end (?:\S+) -->\n", re.S)


def write_section(path, name, text):
    """Puts `text` into `path` (bench/RESULTS.md) as section NAME, between
    marker comments: it replaces what an earlier run wrote there and leaves
    the rest of the file alone; run.py keeps such sections when it rewrites
    its table."""
    block = f"<!-- begin {name} -->\n{text.rstrip()}\n<!-- end {name} -->\n"
    old = open(path).read() if os.path.exists(path) else ""
    mine = re.compile(rf"<!-- begin {re.escape(name)} -->\n.*?<!-- end {re.escape(name)} -->\n", re.S)
    if mine.search(old):
        new = mine.sub(lambda _: block, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + block if old else block
    with open(path, "w") as f:
        f.write(new)


if __name__ == "__main__":
    main()
