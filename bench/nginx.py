"""The nginx built in target/nginx, for the bench scripts: its nginx.conf,
and starting, waiting for and stopping it.

    server = Nginx(work, "name", http_body)    # http_body: inside http {}
    server.start(port)                         # returns once it serves
    ... server.pid, server.workers() ...
    server.stop()
"""

import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = os.path.join(ROOT, "target", "nginx")
NGINX = os.path.join(PREFIX, "sbin", "nginx")
MODULE = os.path.join(PREFIX, "modules", "ngx_http_wsgi_module.so")
# Debian 12's own nginx and the module its package installed (make deb,
# scripts/debian-install).
DEBIAN_NGINX = "/usr/sbin/nginx"
DEBIAN_MODULE = "/usr/lib/nginx/modules/ngx_http_wsgi_module.so"


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def ensure_free(port):
    """Exits if something (a server from an earlier run) listens on `port`."""
    if listening(port):
        sys.exit(f"port {port} is busy: a server from an earlier run is still up")


def wait(ready, what, timeout=20, proc=None):
    """Polls ready() until it is true; exits with `what` after `timeout` s,
    or as soon as `proc` (a server in the foreground) has exited."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what}: the server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            sys.exit(what)
        time.sleep(0.1)


def wait_port(port, timeout=20):
    wait(lambda: listening(port), f"nothing listens on port {port}", timeout)


def children(pid):
    """The pids of `pid`'s children (any of its threads may have started one)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def alive(pid):
    """False once `pid` has exited, reaped or not (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def signal_and_wait(pid, sig, timeout=10):
    """Sends `sig` to `pid`'s process group; whether `pid` has exited
    within `timeout` s."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Nginx:
    """One nginx with `workers` worker processes (none with master=False); its
    nginx.conf, error log and pid file are `name`.conf, .error.log and .pid
    in `work`. `binary` and `module`: another nginx and the module built
    for it (Debian's)."""

    def __init__(self, work, name, http_body, daemon=False, master=True, log_level="error",
                 connections=4096, binary=NGINX, module=MODULE, workers=1):
        self.conf_file = os.path.join(work, f"{name}.conf")
        self.error_log = os.path.join(work, f"{name}.error.log")
        self.pid_file = os.path.join(work, f"{name}.pid")
        self.http_body = http_body
        self.daemon, self.master = daemon, master
        self.log_level, self.connections = log_level, connections
        self.binary, self.module = binary, module
        self.workers_count = workers
        self.proc = None

    def conf(self):
        # As root, the workers would otherwise run as nobody, who may not read the apps.
        user = "user root;" if os.geteuid() == 0 else ""
        return f"""
load_module {self.module};
{user}
daemon {'on' if self.daemon else 'off'};
master_process {'on' if self.master else 'off'};
worker_processes {self.workers_count};
error_log {self.error_log} {self.log_level};
pid {self.pid_file};
events {{ worker_connections {self.connections}; }}
http {{
{self.http_body}
}}
"""

    def start(self, port, wrapper=(), quiet=False, timeout=20):
        """Starts nginx (under `wrapper`, e.g. taskset or valgrind, if given)
        and returns once it listens on `port` and has written its pid file:
        the port is bound before the pid file is written."""
        ensure_free(port)  # else an earlier run's server would answer
        os.makedirs(os.path.dirname(self.conf_file), exist_ok=True)
        with open(self.conf_file, "w") as f:
            f.write(self.conf())
        if os.path.exists(self.pid_file):
            os.unlink(self.pid_file)  # an earlier run's
        out = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}
        # A session of its own: nginx leads its process group (as a daemon it
        # calls setsid() itself), which stop() signals as a whole.
        self.proc = subprocess.Popen(list(wrapper) + [self.binary, "-p", PREFIX, "-c", self.conf_file],
                                     start_new_session=True, **out)
        if self.daemon and self.proc.wait():
            sys.exit(f"nginx exited with {self.proc.returncode}")
        wait(lambda: listening(port) and self.read_pid(), f"nginx does not serve on port {port}", timeout,
             None if self.daemon else self.proc)

    @property
    def pid(self):
        """The master's pid, None when not started. In the foreground it is
        the started process's: taskset and valgrind run nginx in place."""
        if self.proc is None:
            return None
        return self.read_pid() if self.daemon else self.proc.pid

    def read_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read())
        except (OSError, ValueError):  # not there yet, or not written yet
            return None

    def workers(self):
        """The master's worker pids, once it has started them."""
        wait(lambda: children(self.pid), "no nginx worker", 5)
        return children(self.pid)

    def stop(self, sig=signal.SIGTERM, until_gone=False):
        """Sends `sig` to nginx's process group and waits for the master to
        exit: after 10 s, SIGKILL; with until_gone, `sig` again instead, as
        many times as it takes (nginx alone under valgrind can take a signal
        just before it blocks in epoll_wait, and then nothing wakes it)."""
        pid = self.pid
        if pid is not None:
            while not signal_and_wait(pid, sig):
                if not until_gone:
                    signal_and_wait(pid, signal.SIGKILL)
                    break
        if self.proc and not self.daemon:
            self.proc.wait()  # reap it
        self.proc = None
