#!/usr/bin/env python3
"""A 100 MiB file from a WSGI app: through `wsgi.file_wrapper` and through
`X-Accel-Redirect`, on ngx_wsgi and the peers, beside nginx's own static
file, in one run (`make bench`).

The app is `bench/apps.py` for every server: `/file` returns the file
through `environ["wsgi.file_wrapper"]` (64 KiB blocks where a server
iterates it), `/xaccel` answers `X-Accel-Redirect: /protected/100m.bin`,
which nginx serves from an `internal` location. Every nginx here has
`sendfile on` (as Debian's nginx.conf); each server runs one process
pinned with its nginx to core 1, wrk (-t1 -c4) on core 0, as in
bench/run.py, whose measurement this reuses: a 2 s warm-up, then --runs
runs of --seconds, medians. The figure: the server core's busy time per
response, in ms (user + kernel), nginx included; the goal for ngx_wsgi's
rows is within 10 % of nginx's static file.

Writes its section of bench/RESULTS.md. Run `make bench`, or after it:
    bench/files.py [--runs 3] [--seconds 10] [--only NAME,...]
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apps  # noqa: E402  where the file is
import nginx  # noqa: E402
import run  # noqa: E402  its Server, ports, pinning, wrk and RESULTS.md helpers

WORK = os.path.join(run.ROOT, "target", "bench", "files")
SIZE = 100 << 20
CONNECTIONS = 4
GOAL = 1.10


def make_file():
    os.makedirs(os.path.dirname(apps.FILE), exist_ok=True)
    if os.path.exists(apps.FILE) and os.path.getsize(apps.FILE) == SIZE:
        return
    block = bytes(range(256)) * 4096
    with open(apps.FILE + ".tmp", "wb") as f:
        for _ in range(SIZE // len(block)):
            f.write(block)
    os.replace(apps.FILE + ".tmp", apps.FILE)


def servers():
    venv = lambda name: os.path.join(run.VENV, "bin", name)  # noqa: E731
    files = os.path.dirname(os.path.abspath(apps.FILE))
    sock = os.path.join(WORK, "uwsgi.sock")
    protected = f"location /protected/ {{ internal; alias {files}/; }}"

    def front(location):
        return f"""    sendfile on;
    server {{
        listen 127.0.0.1:{run.FRONT} backlog=4096;
        {location}
        {protected}
    }}"""

    wsgi = lambda threads="": front(  # noqa: E731
        f"location / {{ {threads}wsgi_pass apps:application; }}").replace(
        "    sendfile on;", f"    sendfile on;\n    wsgi_python_path {run.BENCH};")
    uwsgi = [venv("uwsgi"), "--socket", sock, "--chmod-socket=666", "--wsgi-file", "apps.py",
             "--processes", "1", "--disable-logging", "--need-app"]
    gunicorn = [venv("gunicorn"), "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{run.BACK}", "--backlog", "4096",
                "apps:application"]
    proxy = front(f"""location / {{
            proxy_pass http://127.0.0.1:{run.BACK};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}""")
    return [
        (run.Server("nginx-static", "nginx static file (ceiling)", work=WORK,
                    nginx=front(f"location / {{ root {files}; }}")), {"file": "/100m.bin"}),
        (run.Server("ngx_wsgi", "ngx_wsgi", nginx=wsgi(), work=WORK), {"file": "/file", "xaccel": "/xaccel"}),
        (run.Server("ngx_wsgi-threads", "ngx_wsgi, `wsgi_threads 4`", nginx=wsgi("wsgi_threads 4; "), work=WORK),
         {"file": "/file", "xaccel": "/xaccel"}),
        (run.Server("uwsgi", "nginx → uWSGI, 1 process", app=uwsgi, backend_socket=sock, work=WORK,
                    nginx=front(f"location / {{ include {nginx.PREFIX}/conf/uwsgi_params; uwsgi_pass unix:{sock}; }}")),
         {"file": "/file", "xaccel": "/xaccel"}),
        (run.Server("gunicorn", "nginx → gunicorn, 1 sync worker", app=gunicorn, backend_port=run.BACK, work=WORK,
                    nginx=proxy), {"file": "/file", "xaccel": "/xaccel"}),
        (run.Server("granian", "granian alone (`--interface wsgi --workers 1`)", port=run.BACK, work=WORK,
                    app=[venv("granian"), "--interface", "wsgi", "--workers", "1", "--host", "127.0.0.1",
                         "--port", str(run.BACK), "--no-log", "apps:application"]), {"file": "/file"}),
    ]


def section(args, rows, results):
    ceiling = results.get(("nginx-static", "file"))
    lines = [
        "## A 100 MiB file (`bench/files.py`)",
        "",
        f"The app (`bench/apps.py`) returns a 100 MiB file through `wsgi.file_wrapper` (`/file`) or answers "
        f"`X-Accel-Redirect` to an `internal` location (`/xaccel`); every nginx has `sendfile on`. One process "
        f"per server, pinned with its nginx to core {run.SERVER_CORE}; wrk -t1 -c{CONNECTIONS} on core "
        f"{run.CLIENT_CORE}; {args.runs} × {args.seconds} s after a 2 s warm-up, medians. ms/response: the "
        "server core's busy time per response (user + kernel), nginx included; `× static`: against nginx's "
        f"own static file (goal for ngx_wsgi: ≤ {GOAL:.2f}). granian has no `wsgi.file_wrapper` (PEP 3333 makes "
        "it optional): the app falls back to `wsgiref.util.FileWrapper`, which granian iterates.",
        "",
        "| server | file_wrapper responses/s | ms/response | × static | X-Accel-Redirect responses/s | "
        "ms/response | × static |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for server, _ in rows:
        cells = []
        for case in ("file", "xaccel"):
            r = results.get((server.name, case))
            if r is None:
                cells.append(" | | ")
                continue
            ms = r[2] / 1000
            times = f"{ms / (ceiling[2] / 1000):.2f}" if ceiling else ""
            cells.append(f"{r[0]:.1f} | {ms:.2f} ({r[3] / 1000:.2f} + {(r[2] - r[3]) / 1000:.2f}) | {times}")
        lines.append(f"| {server.label} | " + " | ".join(cells) + " |")
    lines += ["", "Configurations:", ""]
    lines += run.configurations([s for s, _ in rows])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--only", help="comma-separated server names")
    ap.add_argument("--output", default=os.path.join(run.BENCH, "RESULTS.md"))
    args = ap.parse_args()
    for need in (run.NGINX, run.MODULE, os.path.join(run.VENV, "bin", "granian")):
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench`")
    os.makedirs(WORK, exist_ok=True)
    make_file()
    rows = servers()
    if args.only:
        rows = [(s, c) for s, c in rows if s.name in args.only.split(",")]
    results = {}
    for server, cases in rows:
        print(f"== {server.label}", flush=True)
        with run.started(server):
            for case, path in cases.items():
                run.check(server.port, path, SIZE)
                c = results[(server.name, case)] = run.cell(server.port, path, args.runs, args.seconds,
                                                            CONNECTIONS)
                print(f"   {case:6} {c[0]:8.1f} responses/s  {c[2] / 1000:8.2f} ms/response "
                      f"({c[3] / 1000:.2f} in user space)", flush=True)
    run.write_section(args.output, "files", section(args, rows, results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
