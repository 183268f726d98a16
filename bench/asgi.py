#!/usr/bin/env python3
"""ASGI: ngx_wsgi's `asgi_pass` beside granian, uvicorn and hypercorn, in one
run (`make bench`).

The app is `bench/asgi_apps.py` for every server: /hello (13 bytes) and
/stream (64 sends of 1 KiB with more_body=True, each flushed). Every server
runs one worker process, pinned with its nginx to core 1; wrk -t1 -c50 is
pinned to core 0, and this script too, so that its sampling of RSS never
runs on the server's core. The measurement is bench/run.py's: per cell a
2 s warm-up, then --runs runs of --seconds, medians of req/s, p99 and the
server core's µs per request (user + kernel); here also the peak RSS of
all the server's processes (nginx's included) over the cell.

Rows:
- ngx_wsgi, `asgi_pass`: the app on the asyncio loop nginx's worker steps;
- granian (`--interface asgi`), uvicorn (uvloop, httptools) and hypercorn
  (its default asyncio worker), each alone and behind nginx (`proxy_pass`
  with keepalive connections, as bench/run.py's rows).

Every body is checked against the app's before a cell runs.

Writes its section of bench/RESULTS.md. Run `make bench`, or after it:
    bench/asgi.py [--quick] [--runs 3] [--seconds 10] [--only NAME,...]
"""

import argparse
import contextlib
import os
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import asgi_apps  # noqa: E402  the bodies every server must answer
import run  # noqa: E402  its Server, ports, pinning, wrk and RESULTS.md helpers

WORK = os.path.join(run.ROOT, "target", "bench", "asgi")
APP = "asgi_apps:app"
CASES = {"hello": ("/hello", asgi_apps.HELLO), "stream": ("/stream", asgi_apps.STREAM)}
PACKAGES = ("granian", "uvicorn", "uvloop", "httptools", "hypercorn")


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
        "uvicorn": ("uvloop, httptools, 1 worker",
                    [venv("uvicorn"), "--loop", "uvloop", "--http", "httptools", "--workers", "1",
                     "--host", host, "--port", port, "--backlog", "4096", "--no-access-log",
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
    }}"""
    chosen = [run.Server("ngx_wsgi", "ngx_wsgi, `asgi_pass` (this module)", nginx=ngx_wsgi, work=WORK)]
    others = app_servers()
    chosen += [run.Server(name, f"{name} alone ({options})", app=cmd, port=run.BACK, work=WORK)
               for name, (options, cmd) in others.items()]
    chosen += [run.Server(f"nginx-{name}", f"nginx → proxy_pass → {name}", app=cmd, nginx=run.PROXY,
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
    if run.fetch(server.port, path) != body:
        raise RuntimeError(f"{server.name}: GET {path} is not the app's body")
    peak = [0]
    with peak_rss(server, peak):
        figures = run.cell(server.port, path, args.runs, args.seconds, args.connections)
    return figures + (peak[0],)


def section(args, chosen, results):
    quick = "--quick: " if args.quick else ""
    lines = [
        "## ASGI apps (`bench/asgi.py`)",
        "",
        f"`bench/asgi_apps.py`: `/hello` answers 13 bytes with Content-Length; `/stream` sends "
        f"{asgi_apps.STREAM_CHUNKS} × 1 KiB, each its own `http.response.body` with `more_body=True` (chunked, "
        "each send flushed). ngx_wsgi runs the app with `asgi_pass` on the asyncio loop (the standard "
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
    ap.add_argument("--output", default=os.path.join(run.BENCH, "RESULTS.md"))
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 3
    chosen = servers()
    if args.only:
        chosen = [s for s in chosen if s.name in args.only.split(",")]
    for need in [run.NGINX, run.MODULE] + [s.app_cmd[0] for s in chosen if s.app_cmd]:
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench`")
    os.makedirs(WORK, exist_ok=True)
    # The sampler and the checks stay off the server's core (the servers are
    # started under taskset, so they do not inherit this).
    os.sched_setaffinity(0, {int(run.CLIENT_CORE)})
    results = {}
    for server in chosen:
        print(f"== {server.label}", flush=True)
        with run.started(server):
            for case in CASES:
                c = results[(server.name, case)] = measure(server, case, args)
                print(f"   {case:6} {c[0]:10.0f} req/s  p99 {c[1]:8.2f} ms  {c[2]:8.1f} µs/req "
                      f"({c[3]:.1f} in user space)  peak RSS {c[4] / 1024:.1f} MiB", flush=True)
    run.write_section(args.output, "asgi", section(args, chosen, results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
