#!/usr/bin/env python3
"""Thread mode (`wsgi_threads`): an app that waits 50 ms per request, served
by the same nginx worker as a static file (`make bench`).

One nginx, `worker_processes 1`, pinned to core 1 with `taskset -c 1` (its
Python threads inherit the pinning); the load generators are pinned to core
0. The server has two locations: / runs `bench/apps.py`, whose /sleep50 does
`time.sleep(0.05)` and answers 12 bytes, and /static/ serves a 1 KiB file
from disk. For --seconds (10 s), at the same time:

    wrk -t1 -c256 --latency /sleep50   the app
    2,000 req/s for /static/1k         the worker's other traffic (this
                                       script, 4 keepalive connections)

first with `wsgi_threads 64` on the app's location (after a 2 s warm-up,
and a pause for the requests wrk left queued to finish), then inline
(`wsgi_threads 0`, the default). With 64 threads each holding a request for
50 ms the ceiling is 64 / 0.05 s = 1,280 req/s; the targets are >= 90 % of
it (1,152 req/s) while the static file's p99 stays under 5 ms. Inline, each
request stops the worker's event loop for 50 ms: the app gets at most
20 req/s, and the static requests wait behind it. That run shows the stall
the pool removes.

Why not a second wrk for the file: wrk (closed loop, one request per
connection at a time) only counts a request once its answer arrives. Inline,
the worker gets back to the file every ~13 s (256 app requests x 50 ms in
one event-loop turn), so wrk reported p99 ~8 ms from the few hundred
answers it got in between, and none of the waiting (measured when this was
written; a request on an open connection then waited 12.9 s). The static client here
sends at a fixed rate and times each request from when it was due, not from
when its connection was free to send it (wrk2's correction for coordinated
omission): a stall counts once for every request it held up, and requests
due but unanswered at the end count with their age then. It opens its
connections and gets one answer on each before the load starts, and waits
in select() (microsecond timeouts; epoll's whole milliseconds added ~0.5 ms
to every figure). Inline, its figures are lower bounds. It reports its own
lag (a request due on a free connection, sent late) and warns above 1 ms.
Sharing core 0 with wrk, it kept up with 10,000 and 20,000 req/s here
(lag p99 0.2 ms; file p99 1.8 and 3.6 ms), but one 20,000 run fell behind
(file p99 24 ms, 643 requests unanswered at the end); the default, 2,000,
leaves it room.

wrk's --timeout is set beyond the run's length, so a slow response is
counted in the app's latencies rather than dropped as a timeout. Before each
run the status, the body and environ["wsgi.multithread"] (the app's
X-Multithread header) are checked; a non-2xx response or a socket error from
wrk, or an answer other than 200 with the 1 KiB body to the static client,
fails the run, and the worker's error_log is printed when it is not empty.
The busy share of core 1 (/proc/stat) is reported: near 100 % would mean the
worker's core, not the pool, was the limit.

Writes its section of bench/RESULTS.md (bench/run.py's table stays). Run
`make bench`, or after `make build`:
    bench/threads.py [--seconds 10] [--threads 64] [--clients 256]
                     [--static-rate 2000] [--no-inline]
"""

import argparse
import http.client
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__/run.*.pyc
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apps  # noqa: E402
import nginx  # noqa: E402
import run  # noqa: E402  its servers' nginx.conf, wrk and RESULTS.md helpers

WORK = os.path.join(run.ROOT, "target", "bench", "threads")
PORT = 18110
SLEEP, STATIC = "/sleep50", "/static/1k"
SLEEP_SECONDS = 0.05
STATIC_P99_MS = 5.0  # target for the static file's p99
SHARE = 0.90  # target share of threads / SLEEP_SECONDS for the app
CLIENT_LAG_MS = 1.0  # the static client's own lag p99 above which it warns


def server(threads):
    http_body = f"""    wsgi_python_path {run.BENCH};
    server {{
        listen 127.0.0.1:{PORT} backlog=4096;
        location /static/ {{ root {WORK}; }}
        location / {{ wsgi_threads {threads}; wsgi_pass apps:application; }}
    }}"""
    label = f"`wsgi_threads {threads}`" if threads else "inline (`wsgi_threads 0`)"
    return run.Server(f"threads-{threads}", label, nginx=http_body, port=PORT, work=WORK)


def check(threads):
    """The app answers in the mode asked for, the static file is served."""
    run.check(PORT, STATIC, len(apps.KIB))
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    conn.request("GET", SLEEP)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    multithread = resp.getheader("X-Multithread")
    if resp.status != 200 or body != apps.SLEPT or multithread != str(threads > 0):
        raise RuntimeError(f"GET {SLEEP}: status {resp.status}, body {body[:80]!r}, X-Multithread {multithread} "
                           f"(want 200, {apps.SLEPT!r}, {threads > 0})")


REQUEST = f"GET {STATIC} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def answered(buf):
    """Whether `buf` holds a whole answer to REQUEST; raises on a wrong one."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = buf[:head_end].decode("latin-1").lower()
    length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                   if line.startswith("content-length:")), None)
    if not head.startswith("http/1.1 200 ") or length != len(apps.KIB):
        raise RuntimeError(f"GET {STATIC}: wrong answer {buf[:200]!r}")
    if len(buf) < head_end + 4 + length:
        return False
    if len(buf) > head_end + 4 + length:
        raise RuntimeError(f"GET {STATIC}: {len(buf) - head_end - 4 - length} bytes beyond the body")
    return True


def static_client(conns, rate, seconds, start_load):
    """Asks for the file at `rate` req/s over `conns` keepalive connections
    for `seconds` after start_load() (which starts the app's load) returns.
    Each request is timed from when it was due, not from when it could be
    sent (a connection carries one request at a time, and one that waited
    sends the ones due meanwhile back to back), so a stall counts once for
    every request it held up; requests due but unanswered at the end count
    with their age then. Returns req/s answered, latencies, and the
    client's own lag: from when a request was due and its connection free to
    when it went out (large, and the client is what limits the figures)."""
    socks = [socket.create_connection(("127.0.0.1", PORT), timeout=10) for _ in range(conns)]
    for s in socks:  # accepted and answered once before the load starts
        s.sendall(REQUEST)
        buf = b""
        while not answered(buf):
            data = s.recv(65536)
            if not data:
                raise RuntimeError(f"GET {STATIC}: connection closed")
            buf += data
    # select(): microsecond timeouts (epoll_wait's are whole milliseconds).
    sel = selectors.SelectSelector()
    start_load()
    begin = time.perf_counter()
    end = begin + seconds
    every = conns / rate  # seconds between two requests on one connection
    # Per connection: [when its next request is due, sent?, what came,
    # when its last answer came].
    state = [[begin + i * every / conns, False, b"", begin] for i in range(conns)]
    for s, st in zip(socks, state):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, st)
    lat, lag = [], []
    try:
        while (now := time.perf_counter()) < end:
            for s, st in zip(socks, state):
                if not st[1] and st[0] <= now:
                    s.send(REQUEST)
                    st[1] = True
                    lag.append(now - max(st[0], st[3]))
            wake = min([st[0] for st in state if not st[1]] + [end])
            for key, _ in sel.select(max(0, wake - now)):
                st = key.data
                data = key.fileobj.recv(65536)
                if not data:
                    raise RuntimeError(f"GET {STATIC}: connection closed")
                st[2] += data
                if answered(st[2]):
                    st[3] = time.perf_counter()
                    lat.append(st[3] - st[0])
                    st[0], st[1], st[2] = st[0] + every, False, b""
        now = time.perf_counter()
        done = len(lat)
        for st in state:  # due before the end, unanswered
            due = st[0]
            while due < now:
                lat.append(now - due)
                due += every
    finally:
        for s in socks:
            s.close()
        sel.close()
    lat.sort()
    lag.sort()
    pct = lambda v, p: v[min(len(v) - 1, int(p * len(v)))] * 1000 if v else float("nan")  # noqa: E731
    return {"rps": done / (now - begin), "requests": done, "unanswered": len(lat) - done,
            "p50_ms": pct(lat, 0.50), "p99_ms": pct(lat, 0.99), "max_ms": lat[-1] * 1000,
            "lag_p99_ms": pct(lag, 0.99)}


def both(seconds, clients, static_clients, static_rate):
    """wrk on the app and the static client at once: their figures and the
    busy share of the server's core."""
    cmd = run.wrk_cmd(PORT, SLEEP, seconds, clients, seconds + 10)
    procs = []
    before = run.cpu_sample()
    try:
        def start_load():
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          start_new_session=True))
            time.sleep(0.05)  # wrk's start (exec, connects) on core 0 falls before the measured window
        static = static_client(static_clients, static_rate, seconds, start_load)
        out, err = procs[0].communicate(timeout=30)
        if procs[0].returncode:
            raise RuntimeError(f"{' '.join(cmd)} exited with {procs[0].returncode}:\n{out}{err}")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    after = run.cpu_sample()
    busy = (after[0] - before[0]) / max(1, after[1] - before[1])
    return run.parse_wrk(out), static, busy


def error_log(srv):
    path = srv.nginx.error_log
    return open(path).read().strip() if os.path.exists(path) else ""


def measure(threads, args):
    srv = server(threads)
    print(f"== {srv.label}", flush=True)
    try:
        srv.start()
        check(threads)
        if threads:  # warm-up: every pool thread runs the app once or more
            both(2, args.clients, args.static_clients, args.static_rate)
            # The requests wrk left queued when it closed its connections
            # still run (the module does not drop them): let them finish.
            time.sleep(args.clients / threads * SLEEP_SECONDS + 0.5)
        app, static, busy = both(args.seconds, args.clients, args.static_clients, args.static_rate)
    finally:
        srv.stop()
    log = error_log(srv)
    if log:
        print(f"   error_log:\n{log}", flush=True)
    if threads and app["timeouts"]:
        raise RuntimeError(f"wrk timeouts in thread mode: {app['timeouts']} on {SLEEP}")
    ceiling = threads / SLEEP_SECONDS if threads else 1 / SLEEP_SECONDS
    row = {"threads": threads, "label": srv.label, "app": app, "static": static, "busy": busy,
           "ceiling": ceiling, "conf": srv.describe()}
    print(f"   {SLEEP:11} {args.clients:3} clients {app['rps']:9.0f} req/s ({100 * app['rps'] / ceiling:5.1f} % "
          f"of {ceiling:,.0f})  p50 {app['p50_ms']:8.2f} ms  p99 {app['p99_ms']:8.2f} ms  "
          f"{app['requests']} responses, {app['timeouts']} timeouts", flush=True)
    print(f"   {STATIC:11} {args.static_clients:3} clients {static['rps']:9.0f} req/s"
          f"{'':24}p50 {static['p50_ms']:8.2f} ms  p99 {static['p99_ms']:8.2f} ms  "
          f"{static['requests']} responses, {static['unanswered']} unanswered, longest {static['max_ms']:.2f} ms",
          flush=True)
    print(f"   core {run.SERVER_CORE} busy {100 * busy:.0f} %; static client's own lag p99 "
          f"{static['lag_p99_ms']:.2f} ms", flush=True)
    if threads and static["lag_p99_ms"] > CLIENT_LAG_MS:
        print(f"   WARNING: the static client lagged (p99 {static['lag_p99_ms']:.2f} ms > {CLIENT_LAG_MS:g} ms): "
              "the client, not the server, may set the file's figures; lower --static-rate", flush=True)
    return row


def verdict(row):
    """Whether a thread-mode row meets the issue's targets, and the text."""
    app_ok = row["app"]["rps"] >= SHARE * row["ceiling"]
    static_ok = row["static"]["p99_ms"] < STATIC_P99_MS
    text = (f"app {row['app']['rps']:.0f} req/s {'>=' if app_ok else '<'} {SHARE * row['ceiling']:,.0f} "
            f"({SHARE:.0%} of {row['ceiling']:,.0f}): {'met' if app_ok else 'MISSED'}; "
            f"static p99 {row['static']['p99_ms']:.2f} ms {'<' if static_ok else '>='} {STATIC_P99_MS:g} ms: "
            f"{'met' if static_ok else 'MISSED'}")
    return app_ok and static_ok, text


def section(args, rows):
    lines = [
        "## Thread mode: a 50 ms app and a static file on one worker",
        "",
        f"Produced by `bench/threads.py` (one {args.seconds} s run per mode"
        f"{', after a 2 s warm-up in thread mode' if any(r['threads'] for r in rows) else ''}; "
        f"`bench/threads.py --help` says how) "
        f"on {time.strftime('%Y-%m-%d')}, on the machine above.",
        "",
        f"One nginx worker pinned to core {run.SERVER_CORE} serves two locations: `{SLEEP}` runs an app that "
        f"sleeps 50 ms per request (`bench/apps.py`), `{STATIC}` is a 1 KiB file. On core {run.CLIENT_CORE}, "
        f"at the same time: `wrk -t1 -c{args.clients}` on the app, and the script's own client asking for the "
        f"file {args.static_rate:,} times a second over {args.static_clients} keepalive connections. That client "
        "times each request from when it was due, not from when its connection was free to send it, and counts "
        "requests due but unanswered at the end with their age then, so a stall counts once for every request "
        "it held up (wrk, closed loop, leaves them out, and its p99 for the file misses the inline stall). "
        "With N threads the app's ceiling is N / 0.05 s; the thread-mode "
        "targets are ≥ 90 % of it with the file's p99 under 5 ms. **core busy** is the busy share of core "
        f"{run.SERVER_CORE} over the run; **client lag** is the static client's own delay in sending a request "
        "that was due on a free connection (if it is large, the client limits the file's figures).",
        "",
        "| app location | app req/s | % of ceiling | app p50 ms | app p99 ms | file req/s | file p50 ms "
        "| file p99 ms | file longest ms | core busy | client lag p99 ms |",
        "| --- |" + " ---: |" * 10,
    ]
    for r in rows:
        a, s = r["app"], r["static"]
        lines.append(f"| {r['label']} | {a['rps']:.0f} | {100 * a['rps'] / r['ceiling']:.1f} % of "
                     f"{r['ceiling']:,.0f} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | {s['rps']:.0f} | "
                     f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['max_ms']:.2f} | {100 * r['busy']:.0f} % | "
                     f"{s['lag_p99_ms']:.2f} |")
    lines.append("")
    for r in rows:
        if r["threads"]:
            lines += [f"Targets for {r['label']}: {verdict(r)[1]}.", ""]
    if any(not r["threads"] for r in rows):
        lines += ["Inline, the app blocks the worker's event loop for 50 ms per request; once the app's "
                  f"{args.clients} connections are accepted one turn of the loop serves all their requests "
                  f"(~{args.clients * SLEEP_SECONDS:.0f} s), and the file waits behind them. The inline figures "
                  "are lower bounds: the app's p99 counts only answered requests, and the file's longest wait "
                  "is cut off by the end of the run.", ""]
    lines += ["The configuration (`bench/run.py`'s nginx.conf: `worker_connections 4096`, `access_log off`); "
              "the inline run has `wsgi_threads 0`:", "", "```", rows[0]["conf"], "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="length of each run")
    ap.add_argument("--threads", type=int, default=64, help="wsgi_threads of the thread-mode run")
    ap.add_argument("--clients", type=int, default=256, help="wrk connections on the app")
    ap.add_argument("--static-clients", type=int, default=4, help="connections asking for the static file")
    ap.add_argument("--static-rate", type=int, default=2000, help="requests per second for the static file")
    ap.add_argument("--no-inline", action="store_true", help="skip the inline run")
    ap.add_argument("--output", default=os.path.join(run.BENCH, "RESULTS.md"))
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(run.CLIENT_CORE)})  # the static client runs in this process
    if args.threads < 1:
        sys.exit("--threads must be 1 or more (the inline run is always made unless --no-inline)")
    for need in (nginx.NGINX, nginx.MODULE):
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make build`")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "static"))
    with open(os.path.join(WORK, "static", "1k"), "wb") as f:
        f.write(apps.KIB)

    rows = [measure(args.threads, args)]
    if not args.no_inline:
        rows.append(measure(0, args))
    ok, text = verdict(rows[0])
    print(("targets met: " if ok else "TARGETS MISSED: ") + text, flush=True)
    run.write_section(args.output, "threads", section(args, rows))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
