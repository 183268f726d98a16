#!/usr/bin/env python3
"""A Flask app as users deploy one: ngx_wsgi in thread mode beside nginx →
uWSGI, nginx → gunicorn (gthread) and granian, each with the same number of
Python threads, in one run (`make bench`).

The app is `bench/flask_app.py` (Flask 3, from target/bench-venv, which
every server uses): `/api/products` answers JSON (661 bytes) and
`/products` renders a Jinja template (4,344 bytes). Each server runs one
process with THREADS (4) Python threads, pinned with its nginx to core 1;
wrk (-t1 -c50) is pinned to core 0, as in bench/run.py, whose measurement
this reuses: per cell a 2 s warm-up, then --runs runs of --seconds, medians
of req/s, p99 and the server core's µs per request (user + kernel).

Rows:
- ngx_wsgi, `wsgi_threads 4` (and, for reference, inline: the app on the
  worker's own thread, no pool);
- nginx → `uwsgi_pass` (unix socket) → uWSGI, `--processes 1 --threads 4`;
- nginx → `proxy_pass` (keepalive) → gunicorn, `-w 1 -k gthread --threads 4`;
- granian alone, `--workers 1 --blocking-threads 4` (it serves HTTP itself).

Every body is checked against the first server's before a cell runs.

Writes its section of bench/RESULTS.md. Run `make bench`, or after it:
    bench/framework.py [--runs 3] [--seconds 10] [--only NAME,...]
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nginx  # noqa: E402
import run  # noqa: E402  its Server, ports, pinning, wrk and RESULTS.md helpers

WORK = os.path.join(run.ROOT, "target", "bench", "framework")
THREADS = 4
CASES = {"json": "/api/products", "page": "/products"}
APP = "flask_app:app"


def servers():
    venv = lambda name: os.path.join(run.VENV, "bin", name)  # noqa: E731
    sock = os.path.join(WORK, "uwsgi.sock")

    def ngx_wsgi(threads):
        return f"""    wsgi_python_home {run.VENV};
    wsgi_python_path {run.BENCH};
    server {{
        listen 127.0.0.1:{run.FRONT} backlog=4096;
        location / {{ {threads}wsgi_pass {APP}; }}
    }}"""

    return [
        run.Server("ngx_wsgi-threads", f"ngx_wsgi, `wsgi_threads {THREADS}`",
                   nginx=ngx_wsgi(f"wsgi_threads {THREADS}; "), work=WORK),
        run.Server("ngx_wsgi", "ngx_wsgi inline (no pool; for reference)", nginx=ngx_wsgi(""), work=WORK),
        run.Server("uwsgi", f"nginx → uWSGI, 1 process × {THREADS} threads",
                   app=[venv("uwsgi"), "--socket", sock, "--chmod-socket=666", "--module", APP,
                        "--processes", "1", "--threads", str(THREADS), "--disable-logging", "--need-app"],
                   backend_socket=sock, work=WORK,
                   nginx=f"""    server {{
        listen 127.0.0.1:{run.FRONT} backlog=4096;
        location / {{ include {nginx.PREFIX}/conf/uwsgi_params; uwsgi_pass unix:{sock}; }}
    }}"""),
        run.Server("gunicorn", f"nginx → gunicorn, 1 gthread worker × {THREADS} threads",
                   app=[venv("gunicorn"), "-w", "1", "-k", "gthread", "--threads", str(THREADS),
                        "-b", f"127.0.0.1:{run.BACK}", "--backlog", "4096", APP],
                   backend_port=run.BACK, work=WORK,
                   nginx=run.PROXY),
        run.Server("granian", f"granian alone, 1 worker × {THREADS} blocking threads", port=run.BACK,
                   app=[venv("granian"), "--interface", "wsgi", "--workers", "1", "--blocking-threads",
                        str(THREADS), "--host", "127.0.0.1", "--port", str(run.BACK), "--no-log", APP],
                   work=WORK),
    ]


def section(args, chosen, results):
    lines = [
        "## A Flask app (`bench/framework.py`)",
        "",
        f"`bench/flask_app.py` (Flask 3): `/api/products` answers JSON, `/products` renders a Jinja template "
        f"(4.3 KB). Every server runs one process with {THREADS} Python threads, pinned with its nginx to "
        f"core {run.SERVER_CORE}; wrk -t1 -c{args.connections} on core {run.CLIENT_CORE}; {args.runs} × "
        f"{args.seconds} s runs after a 2 s warm-up, medians. µs/req: the server core's busy time per request, "
        "nginx included, split into user space + kernel.",
        "",
        "| server | json req/s | json p99 ms | json µs/req | page req/s | page p99 ms | page µs/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in chosen:
        cells = []
        for case in CASES:
            r = results.get((s.name, case))
            cells.append(f"{r[0]:.0f} | {r[1]:.2f} | {r[2]:.1f} ({r[3]:.1f} + {r[2] - r[3]:.1f})" if r
                         else " | ")
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    lines += ["", "Configurations:", ""]
    lines += run.configurations(chosen)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--only", help="comma-separated server names")
    ap.add_argument("--output", default=os.path.join(run.BENCH, "RESULTS.md"))
    args = ap.parse_args()
    for need in (run.NGINX, run.MODULE, os.path.join(run.VENV, "bin", "flask")):
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench`")
    os.makedirs(WORK, exist_ok=True)
    chosen = servers()
    if args.only:
        chosen = [s for s in chosen if s.name in args.only.split(",")]
    results, expected = {}, {}
    for server in chosen:
        print(f"== {server.label}", flush=True)
        with run.started(server):
            for case, path in CASES.items():
                body = run.fetch(server.port, path)
                if expected.setdefault(case, body) != body:
                    raise RuntimeError(f"{server.name}: GET {path} differs from the first server's answer")
                c = results[(server.name, case)] = run.cell(server.port, path, args.runs, args.seconds,
                                                            args.connections)
                print(f"   {case:5} {c[0]:10.0f} req/s  p99 {c[1]:8.2f} ms  {c[2]:8.1f} µs/req "
                      f"({c[3]:.1f} in user space)", flush=True)
    run.write_section(args.output, "framework", section(args, chosen, results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
