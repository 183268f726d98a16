#!/usr/bin/env python3
"""A 1 GiB upload: ngx_wsgi in thread mode with `wsgi_request_buffering` on
and off, beside the peers, in one run (`make bench`).

The client sends `PUT /upload` with a 1 GiB body (Content-Length) as fast
as loopback takes it, from one process pinned to core 0; the app
(`bench/apps.py`, the same for every server) reads `wsgi.input` in 64 KiB
pieces and answers its SHA-256, its length and the time its first read
returned, which are checked. Every server runs one worker process pinned
to core 1 (nginx in front included), as in bench/run.py. Per row, the
medians of --runs uploads (3):

- **RSS growth**: the peak RSS of all the server's processes over their RSS
  before the upload (sampled every 20 ms); the goal for ngx_wsgi is at most
  32 MiB, on and off.
- **CPU ms/MiB**: user + system time of all the server's processes
  (/proc/PID/stat, threads and exited children included) per MiB of body.
- **first read**: from the client's first body byte to the app's first
  read returning. With buffering (nginx's `*_request_buffering on`) the app
  starts once the whole body is in nginx's temp file; without, at once.
- **upload s**: from the first body byte to the response.

Rows: ngx_wsgi `wsgi_threads 4` with `wsgi_request_buffering on` (the body
goes to nginx's temp file, and `wsgi.input` reads it from there) and `off`
(the app reads it as it arrives, through a 256 KiB window); nginx →
`uwsgi_pass` with `uwsgi_request_buffering off` → uWSGI; nginx →
`proxy_pass` (buffering on, as gunicorn wants it) → gunicorn; granian
alone; and the module before it read bodies from the temp file (--baseline,
a commit built in a git worktree under target/bench/, once), which copied
the whole body into one bytes object.

Writes its section of bench/RESULTS.md. Run `make bench`, or after it:
    bench/uploads.py [--runs 3] [--mib 1024] [--baseline REV | --no-baseline]
"""

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nginx  # noqa: E402
import run  # noqa: E402  its Server, ports, pinning and RESULTS.md helpers

WORK = os.path.join(run.ROOT, "target", "bench", "uploads")
BASELINE_DIR = os.path.join(run.ROOT, "target", "bench", "baseline")
# The last commit whose wsgi.input copied the whole body into memory.
BASELINE_REV = "c69dab9"
PIECE = bytes(range(256)) * 4096  # 1 MiB the client sends again and again
GOAL_MIB = 32


def servers(baseline):
    temp = os.path.join(WORK, "client_body_temp")
    limits = f"    client_max_body_size 4g;\n    client_body_temp_path {temp};\n"

    def ngx_wsgi(directive=""):
        return limits + f"""    wsgi_python_path {run.BENCH};
    server {{
        listen 127.0.0.1:{run.FRONT};
        location / {{ wsgi_threads 4; {directive}wsgi_pass apps:application; }}
    }}"""

    sock = os.path.join(WORK, "uwsgi.sock")
    venv = lambda name: os.path.join(run.VENV, "bin", name)  # noqa: E731
    granian = [venv("granian"), "--interface", "wsgi", "--workers", "1", "--host", "127.0.0.1",
               "--port", str(run.BACK), "--no-log", "apps:application"]
    rows = [
        run.Server("wsgi-on", "ngx_wsgi, `wsgi_threads 4`, `wsgi_request_buffering on`", nginx=ngx_wsgi("wsgi_request_buffering on; "), work=WORK),
        run.Server("wsgi-off", "ngx_wsgi, `wsgi_threads 4`, `wsgi_request_buffering off`", nginx=ngx_wsgi("wsgi_request_buffering off; "), work=WORK),
        run.Server("uwsgi", "nginx → uWSGI, `uwsgi_request_buffering off`, 1 process",
                   app=[venv("uwsgi"), "--socket", sock, "--chmod-socket=666", "--wsgi-file", "apps.py",
                        "--processes", "1", "--disable-logging", "--need-app"],
                   backend_socket=sock, work=WORK,
                   nginx=limits + f"""    server {{
        listen 127.0.0.1:{run.FRONT};
        location / {{
            include {nginx.PREFIX}/conf/uwsgi_params;
            uwsgi_pass unix:{sock};
            uwsgi_request_buffering off;
        }}
    }}"""),
        run.Server("gunicorn", "nginx → gunicorn (1 sync worker; `proxy_request_buffering on`)",
                   app=[venv("gunicorn"), "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{run.BACK}", "--timeout",
                        "120", "apps:application"], backend_port=run.BACK, work=WORK,
                   nginx=limits + f"""    server {{
        listen 127.0.0.1:{run.FRONT};
        location / {{ proxy_pass http://127.0.0.1:{run.BACK}; proxy_http_version 1.1; }}
    }}"""),
        run.Server("granian", "granian alone (`--interface wsgi --workers 1`)", port=run.BACK, app=granian,
                   work=WORK),
    ]
    if baseline:
        binary, module, rev = baseline
        rows.insert(0, run.Server("baseline", f"ngx_wsgi before (`{rev}`, whole body in memory), `wsgi_threads 4`",
                                  nginx=ngx_wsgi(), work=WORK))
        rows[0].binary = (binary, module)
    return rows


def build_baseline(rev):
    """Builds the module at `rev` with its nginx in a worktree (once); its
    (nginx, module, short rev), or None if it cannot be built."""
    binary = os.path.join(BASELINE_DIR, "target", "nginx", "sbin", "nginx")
    module = os.path.join(BASELINE_DIR, "target", "nginx", "modules", "ngx_http_wsgi_module.so")
    try:
        short = subprocess.run(["git", "-C", run.ROOT, "rev-parse", "--short", rev], capture_output=True,
                               text=True, check=True).stdout.strip()
        stamp = os.path.join(BASELINE_DIR, ".built-rev")
        if os.path.exists(stamp) and open(stamp).read() == short and os.path.exists(module):
            return binary, module, short
        print(f"building the baseline module ({short}) in {BASELINE_DIR} ...", flush=True)
        subprocess.run(["git", "-C", run.ROOT, "worktree", "remove", "--force", BASELINE_DIR],
                       capture_output=True)
        shutil.rmtree(BASELINE_DIR, ignore_errors=True)
        subprocess.run(["git", "-C", run.ROOT, "worktree", "add", "--detach", BASELINE_DIR, rev], check=True,
                       capture_output=True)
        built = subprocess.run([os.path.join(BASELINE_DIR, "scripts", "build")], cwd=BASELINE_DIR,
                               capture_output=True, text=True)
        if built.returncode != 0:
            raise OSError(f"scripts/build said:\n{built.stderr[-2000:]}")
        with open(stamp, "w") as f:
            f.write(short)
        return binary, module, short
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"no baseline row: building {rev} failed: {e}", flush=True)
        return None


def cpu_ticks(server):
    """User + system ticks of the server's processes, their threads and
    their reaped children."""
    total = 0
    for pid in server.pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except OSError:
            pass
    return total


def expected_digest(mib):
    digest = hashlib.sha256()
    for _ in range(mib):
        digest.update(PIECE)
    return digest.hexdigest()


def upload(server, mib):
    """One upload; its figures (RSS growth MiB, CPU ms/MiB, first read s,
    upload s) and the app's answer."""
    base = server.rss_kib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], server.rss_kib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    ticks0 = cpu_ticks(server)
    s = socket.create_connection(("127.0.0.1", server.port))
    try:
        s.sendall(f"PUT /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  f"Content-Length: {mib << 20}\r\n\r\n".encode())
        start = time.time()
        for _ in range(mib):
            s.sendall(PIECE)
        data = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            data += got
        took = time.time() - start
    finally:
        s.close()
        done.set()
        sampler.join()
    ticks = cpu_ticks(server) - ticks0
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{server.name}: {head[:200]!r}")
    digest, size, first = body.split()
    cpu_ms = ticks * 1000 / os.sysconf("SC_CLK_TCK")
    return ((peak[0] - base) / 1024, cpu_ms / mib, float(first) - start, took), (digest.decode(), int(size))


def measure(server, mib, runs, want):
    print(f"== {server.label}", flush=True)
    for port in (run.FRONT, run.BACK):
        nginx.ensure_free(port)
    binary = getattr(server, "binary", None)
    saved = (nginx.NGINX, nginx.MODULE)
    if binary:
        nginx.NGINX, nginx.MODULE = binary
    try:
        server.start()
        results = []
        for _ in range(runs):
            figures, (digest, size) = upload(server, mib)
            if (digest, size) != want:
                raise RuntimeError(f"{server.name}: the app read {size} bytes, SHA-256 {digest}")
            print("   RSS +%.1f MiB  %.2f CPU ms/MiB  first read after %.2f s  upload %.2f s" % figures,
                  flush=True)
            results.append(figures)
        return tuple(statistics.median(r[i] for r in results) for i in range(4))
    finally:
        server.stop()
        nginx.NGINX, nginx.MODULE = saved


def section(args, chosen, rows):
    lines = [
        "## A 1 GiB upload: wsgi_request_buffering on and off",
        "",
        f"Produced by `bench/uploads.py` (medians of {args.runs} uploads of {args.mib} MiB per row; "
        f"`bench/uploads.py --help` says how) on {time.strftime('%Y-%m-%d')}, on the machine above.",
        "",
        f"One client on core {run.CLIENT_CORE} sends `PUT /upload` with a {args.mib} MiB body (Content-Length) "
        f"as fast as loopback takes it; the app reads `wsgi.input` in 64 KiB pieces and answers its SHA-256 "
        f"(checked). Every server has one worker process on core {run.SERVER_CORE}. **RSS growth**: the peak RSS "
        "of all the server's processes over their RSS before the upload (goal for ngx_wsgi: at most "
        f"{GOAL_MIB} MiB); **CPU**: user + system time of those processes per MiB; **first read**: from the "
        "client's first body byte to the app's first read returning; **upload**: from the first body byte to "
        "the response.",
        "",
        "| server | RSS growth MiB | CPU ms/MiB | first read s | upload s | MiB/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in chosen:
        r = rows.get(s.name)
        if r is None:
            lines.append(f"| {s.label} | failed | | | | |")
            continue
        lines.append(f"| {s.label} | {r[0]:.1f} | {r[1]:.2f} | {r[2]:.3f} | {r[3]:.2f} | {args.mib / r[3]:.0f} |")
    lines += ["", "The configurations (after bench/run.py's common `http {}` lines):", ""]
    lines += run.configurations(chosen)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=1024, help="the body's size")
    ap.add_argument("--baseline", default=BASELINE_REV, help="the commit of the baseline row")
    ap.add_argument("--no-baseline", action="store_true", help="leave the baseline row out")
    ap.add_argument("--only", help="comma-separated row names")
    ap.add_argument("--output", default=os.path.join(run.BENCH, "RESULTS.md"))
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(run.CLIENT_CORE)})
    for need in (nginx.NGINX, nginx.MODULE, os.path.join(run.VENV, "bin", "granian")):
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench`")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    baseline = None if args.no_baseline else build_baseline(args.baseline)
    chosen = servers(baseline)
    if args.only:
        chosen = [s for s in chosen if s.name in args.only.split(",")]
    want = (expected_digest(args.mib), args.mib << 20)
    rows = {}
    for server in chosen:
        try:
            rows[server.name] = measure(server, args.mib, args.runs, want)
        except (RuntimeError, OSError) as e:
            print(f"   failed: {e}", flush=True)
    missed = [s.label for s in chosen if s.name.startswith("wsgi-") and rows.get(s.name, (1e9,))[0] > GOAL_MIB]
    print(("RSS GOAL MISSED: " + ", ".join(missed)) if missed else f"RSS goal met (<= {GOAL_MIB} MiB)", flush=True)
    run.write_section(args.output, "uploads", section(args, chosen, rows))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
