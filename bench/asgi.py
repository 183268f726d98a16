#!/usr/bin/env python3
"""ASGI: ngx_wsgi's `asgi_pass` beside granian, uvicorn and hypercorn, in one
run (`make bench`).

The app is `bench/asgi_apps.py` for every server: /hello (13 bytes),
/stream (64 sends of 1 KiB with more_body=True, each flushed), /upload (a
64 KiB POST read through receive(), streamed: `wsgi_request_buffering off`
for ngx_wsgi, `proxy_request_buffering off` in front of the others) and /ws
(a WebSocket echo). Every server runs one worker process, pinned with its
nginx to core 1; wrk -t1 -c50 is pinned to core 0, and this script too,
so that its sampling of RSS never runs on the server's core. The
measurement is bench/run.py's: per cell a 2 s warm-up, then --runs runs
of --seconds, medians of req/s, p99 and the server core's µs per request
(user + kernel); here also the peak RSS of all the server's processes
(nginx's included) over the cell.

The WebSocket echo case has its own load client (echo_load below, the
`websockets` library on asyncio, in the bench venv's Python, pinned to core
0 as wrk is): --connections WebSockets, each sending a 32-byte message and
awaiting its echo, again and again; round-trips/s, p99, the server core's
µs per round-trip, peak RSS, and the client's share of its own core. An
echo must come back byte for byte; a connection refused, dropped or
answered wrongly counts as failed and marks its server's cell. The
client's one core may be the limit (as wrk's may): µs per round-trip
still says what the server spends.

Rows:
- ngx_wsgi, `asgi_pass`: the app on the asyncio loop nginx's worker steps;
- granian (`--interface asgi`), uvicorn (uvloop, httptools, websockets)
  and hypercorn (its default asyncio worker), each alone and behind nginx
  (`proxy_pass` with keepalive connections, as bench/run.py's rows; /ws
  proxied as a WebSocket).

Every body is checked against the app's before a cell runs, every echo
as it comes back.

Writes its section of bench/RESULTS.md. Run `make bench`, or after it:
    bench/asgi.py [--quick] [--runs 3] [--seconds 10] [--only NAME,...] [--cases hello,stream,upload,ws]
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import asgi_apps  # noqa: E402  the bodies every server must answer
import run  # noqa: E402  its Server, ports, pinning, wrk and RESULTS.md helpers

WORK = os.path.join(run.ROOT, "target", "bench", "asgi")
APP = "asgi_apps:app"
CASES = {"hello": ("/hello", asgi_apps.HELLO), "stream": ("/stream", asgi_apps.STREAM),
         "upload": ("/upload", asgi_apps.UPLOADED)}
UPLOAD = "upload"  # the case that POSTs a body (UPLOAD_SCRIPT shapes wrk's requests)
UPLOAD_SCRIPT = os.path.join(WORK, "upload.lua")
WS = "ws"  # the WebSocket echo case, beside CASES (wrk's)
WS_PATH, WS_MESSAGE = "/ws", 32  # its route, and the bytes of each message
WS_TIMEOUT = 10  # s a connection may wait for its last echo once a run ends
PACKAGES = ("granian", "uvicorn", "uvloop", "httptools", "websockets", "hypercorn")

# run.PROXY, with /ws passed on as a WebSocket: Upgrade and Connection are
# hop-by-hop headers, so nginx forwards the client's upgrade only when told
# to, and only over HTTP/1.1.
PROXY = f"""    upstream app {{ server 127.0.0.1:{run.BACK}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{run.FRONT} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /upload {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }}
        location = {WS_PATH} {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}
    }}"""


def app_servers():
    """Each ASGI server: (what its options are, the command serving APP on
    run.BACK with one worker)."""
    venv = lambda name: os.path.join(run.VENV, "bin", name)  # noqa: E731
    host, port = "127.0.0.1", str(run.BACK)
    return {
        # uvloop is what granian's default (--loop auto) picks when uvloop
        # is installed; said here so the configuration shows it.
        "granian": ("`--interface asgi`, 1 worker, uvloop",
                    [venv("granian"), "--interface", "asgi", "--workers", "1", "--loop", "uvloop",
                     "--host", host, "--port", port, "--backlog", "4096", "--no-log", APP]),
        # websockets-sansio is what --ws auto picks with websockets installed.
        "uvicorn": ("uvloop, httptools, websockets, 1 worker",
                    [venv("uvicorn"), "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
                     "--workers", "1", "--host", host, "--port", port, "--backlog", "4096", "--no-access-log",
                     "--log-level", "warning", APP]),
        # hypercorn's default worker class: the standard library's loop, the
        # one ngx_wsgi's worker steps.
        "hypercorn": ("1 asyncio worker",
                      [venv("hypercorn"), "--workers", "1", "--worker-class", "asyncio", "--bind", f"{host}:{port}",
                       "--backlog", "4096", APP]),
    }


def servers():
    ngx_wsgi = f"""    wsgi_python_path {run.BENCH};
    server {{
        listen 127.0.0.1:{run.FRONT} backlog=4096;
        location / {{ asgi_pass {APP}; }}
        location = /upload {{ wsgi_request_buffering off; asgi_pass {APP}; }}
    }}"""
    chosen = [run.Server("ngx_wsgi", "ngx_wsgi, `asgi_pass` (this module)", nginx=ngx_wsgi, work=WORK)]
    others = app_servers()
    chosen += [run.Server(name, f"{name} alone ({options})", app=cmd, port=run.BACK, work=WORK)
               for name, (options, cmd) in others.items()]
    chosen += [run.Server(f"nginx-{name}", f"nginx → proxy_pass → {name}", app=cmd, nginx=PROXY,
                          backend_port=run.BACK, work=WORK)
               for name, (options, cmd) in others.items()]
    return chosen


@contextlib.contextmanager
def peak_rss(server, peak):
    """While the with block runs, samples the RSS of `server`'s processes
    every 0.25 s into peak[0] (KiB, the highest seen)."""
    done = threading.Event()

    def sample():
        while True:
            peak[0] = max(peak[0], server.rss_kib())
            if done.wait(0.25):
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()


def measure(server, case, args):
    """One cell: run.cell's medians, and the peak RSS (KiB) while it ran."""
    path, body = CASES[case]
    upload = b"u" * asgi_apps.UPLOAD_SIZE if case == UPLOAD else None
    if run.fetch(server.port, path, upload) != body:
        raise RuntimeError(f"{server.name}: {path} is not the app's answer")
    script = UPLOAD_SCRIPT if case == UPLOAD else None
    peak = [0]
    with peak_rss(server, peak):
        figures = run.cell(server.port, path, args.runs, args.seconds, args.connections, script)
    return figures + (peak[0],)


async def echo_load(port, seconds, connections):
    """One run of the WebSocket echo case, in the bench venv's Python on the
    client core (echo_run starts it). Opens `connections` WebSockets to
    WS_PATH; once all are open, each sends a WS_MESSAGE-byte message, awaits
    its echo and sends the next, for `seconds`. Returns round-trips/s, p99
    ms, the server core's µs per round-trip and its user-space part (as
    run.wrk computes them), the client's own share of its core (near 100%,
    the client set the rate) and the connections that failed."""
    from websockets.asyncio.client import connect  # only the venv has it

    # No permessage-deflate (uvicorn and hypercorn would agree to it,
    # ngx_wsgi has none) and no keepalive pings: the same frames for all.
    opened = await asyncio.gather(*[connect(f"ws://127.0.0.1:{port}{WS_PATH}", compression=None,
                                            ping_interval=None) for _ in range(connections)],
                                  return_exceptions=True)
    sockets = [ws for ws in opened if not isinstance(ws, BaseException)]
    latencies, failed, running = [], [len(opened) - len(sockets)], [True]

    async def round_trips(n, ws):
        seq = 0
        try:
            while running[0]:
                # Numbered by connection and message: an echo of another
                # connection's, or of an earlier one, does not match.
                message = b"%04d %*d" % (n, WS_MESSAGE - 5, seq)
                start = time.perf_counter()
                await ws.send(message)
                if await ws.recv() != message:
                    failed[0] += 1
                    return
                if running[0]:  # a round-trip that ends after the run is not in its figures
                    latencies.append(time.perf_counter() - start)
                seq += 1
        except Exception:  # the connection closed or broke
            failed[0] += 1

    tasks = [asyncio.ensure_future(round_trips(n, ws)) for n, ws in enumerate(sockets)]
    before, start, own = run.cpu_sample(), time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    after, elapsed, own = run.cpu_sample(), time.perf_counter() - start, time.process_time() - own
    running[0] = False
    if tasks:
        _, hung = await asyncio.wait(tasks, timeout=WS_TIMEOUT)
        for task in hung:
            task.cancel()
        failed[0] += len(hung)
    await asyncio.gather(*[ws.close() for ws in sockets], return_exceptions=True)
    rate = len(latencies) / elapsed
    total = max(1, after[1] - before[1])
    per_trip = lambda ticks: ticks / total * 1e6 / rate if rate else float("nan")  # noqa: E731
    return {"rate": rate,
            "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1e3 if len(latencies) > 1 else float("nan"),
            "us": per_trip(after[0] - before[0]), "us_user": per_trip(after[2] - before[2]),
            "client": own / elapsed * 100, "failed": failed[0]}


def echo_run(port, seconds, connections):
    """echo_load in a process of its own: the venv's Python (the one with
    websockets), pinned to the client core like wrk."""
    cmd = ["taskset", "-c", run.CLIENT_CORE, os.path.join(run.VENV, "bin", "python"), os.path.abspath(__file__),
           "--echo-load", str(port), "--seconds", str(seconds), "--connections", str(connections)]
    return json.loads(subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout)


def measure_echo(server, args):
    """The echo cell, as run.cell does wrk's: a 2 s warm-up, then --runs
    runs, medians; the peak RSS (KiB); the failed connections of every run,
    the warm-up's included; the client's share of its core (%)."""
    peak = [0]
    with peak_rss(server, peak):
        runs = [echo_run(server.port, seconds, args.connections) for seconds in [2] + [args.seconds] * args.runs]
    median = lambda key: statistics.median(r[key] for r in runs[1:])  # noqa: E731
    return (median("rate"), median("p99_ms"), median("us"), median("us_user"), peak[0],
            sum(r["failed"] for r in runs), median("client"))


def section(args, chosen, results):
    quick = "--quick: " if args.quick else ""
    lines = [
        "## ASGI apps (`bench/asgi.py`)",
        "",
        f"`bench/asgi_apps.py`: `/hello` answers 13 bytes with Content-Length; `/stream` sends "
        f"{asgi_apps.STREAM_CHUNKS} × 1 KiB, each its own `http.response.body` with `more_body=True` (chunked, "
        f"each send flushed); `/upload` takes a POST of {asgi_apps.UPLOAD_SIZE // 1024} KiB (Content-Length), "
        "reads it through `receive()` and answers its length: ngx_wsgi with `wsgi_request_buffering off`, "
        "nginx in front of the others with `proxy_request_buffering off`, so that every server streams the "
        "body rather than nginx's temp file holding it. ngx_wsgi runs the app with `asgi_pass` on the asyncio loop (the standard "
        "library's) that its worker's event loop steps; granian, uvicorn and hypercorn serve it alone and "
        f"behind nginx (`proxy_pass`, keepalive). Every server runs one worker process, pinned with its nginx "
        f"to core {run.SERVER_CORE}; wrk -t1 -c{args.connections} on core {run.CLIENT_CORE}; {quick}{args.runs} × "
        f"{args.seconds} s runs after a 2 s warm-up, medians. µs/req: the server core's busy time per request, "
        "nginx included, split into user space + kernel. RSS: the peak sum over all the server's processes "
        "(nginx master and worker, the app server's supervisor and worker) during the cell.",
        "",
        f"Machine: {run.machine(PACKAGES)}.",
        "",
        "| server | " + " | ".join(f"{c} req/s | {c} p99 ms | {c} µs/req | {c} RSS MiB" for c in CASES) + " |",
        "| --- |" + " ---: |" * (4 * len(CASES)),
    ]
    for s in chosen:
        cells = []
        for case in CASES:
            r = results.get((s.name, case))
            cells.append(f"{r[0]:.0f} | {r[1]:.2f} | {r[2]:.1f} ({r[3]:.1f} + {r[2] - r[3]:.1f}) | {r[4] / 1024:.1f}"
                         if r else " |  |  | ")
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"WebSocket echo (`/ws`): {args.connections} WebSockets (`websockets` on asyncio, one Python process "
        f"on core {run.CLIENT_CORE}), each sending a {WS_MESSAGE}-byte binary message and awaiting its echo "
        "before the next; no compression; the same runs and medians. Behind nginx, `/ws` is proxied with "
        "`proxy_http_version 1.1` and the `Upgrade` and `Connection` headers set. µs/round-trip: the server "
        "core's busy time per round-trip, as µs/req above. client %: the load client's share of its own core; "
        "near 100, the client, not the server, set the rate. failed: connections refused, dropped, or sent "
        "back anything but their own message byte for byte, over every run (a rate marked ✗ has some).",
        "",
        "| server | echo round-trips/s | echo p99 ms | echo µs/round-trip | echo RSS MiB | client % | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in chosen:
        r = results.get((s.name, WS))
        if r:
            mark = "✗ " if r[5] else ""
            lines.append(f"| {s.label} | {mark}{r[0]:.0f} | {r[1]:.2f} | {r[2]:.1f} ({r[3]:.1f} + "
                         f"{r[2] - r[3]:.1f}) | {r[4] / 1024:.1f} | {r[6]:.0f} | {r[5]} |")
        else:
            lines.append(f"| {s.label} |  |  |  |  |  |  |")
    lines += ["", "Configurations:", ""]
    lines += run.configurations(chosen)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s per cell (under 3 minutes)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--only", help="comma-separated server names")
    ap.add_argument("--cases", default=",".join([*CASES, WS]), help="comma-separated cases (default: %(default)s)")
    ap.add_argument("--output", default=os.path.join(run.BENCH, "RESULTS.md"))
    ap.add_argument("--echo-load", type=int, metavar="PORT", help=argparse.SUPPRESS)  # echo_run's child
    args = ap.parse_args()
    if args.echo_load:
        print(json.dumps(asyncio.run(echo_load(args.echo_load, args.seconds, args.connections))))
        return
    if args.quick:
        args.runs, args.seconds = 1, 3
    cases = args.cases.split(",")
    chosen = servers()
    if args.only:
        chosen = [s for s in chosen if s.name in args.only.split(",")]
    needs = [run.NGINX, run.MODULE] + [s.app_cmd[0] for s in chosen if s.app_cmd]
    for need in needs + ([os.path.join(run.VENV, "bin", "python")] if WS in cases else []):
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench`")
    os.makedirs(WORK, exist_ok=True)
    with open(UPLOAD_SCRIPT, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = string.rep("u", {asgi_apps.UPLOAD_SIZE})\n')
    # The sampler and the checks stay off the server's core (the servers are
    # started under taskset, so they do not inherit this).
    os.sched_setaffinity(0, {int(run.CLIENT_CORE)})
    results = {}
    for server in chosen:
        print(f"== {server.label}", flush=True)
        with run.started(server):
            for case in [c for c in CASES if c in cases]:
                c = results[(server.name, case)] = measure(server, case, args)
                print(f"   {case:6} {c[0]:10.0f} req/s  p99 {c[1]:8.2f} ms  {c[2]:8.1f} µs/req "
                      f"({c[3]:.1f} in user space)  peak RSS {c[4] / 1024:.1f} MiB", flush=True)
            if WS in cases:
                c = results[(server.name, WS)] = measure_echo(server, args)
                print(f"   {WS:6} {c[0]:10.0f} rt/s   p99 {c[1]:8.2f} ms  {c[2]:8.1f} µs/rt  ({c[3]:.1f} in user "
                      f"space)  peak RSS {c[4] / 1024:.1f} MiB  client {c[6]:.0f}%  failed {c[5]}", flush=True)
    run.write_section(args.output, "asgi", section(args, chosen, results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
