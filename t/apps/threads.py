"""Apps for the thread-mode tests (t/013-threads.t)."""

import threading
import time

_local = threading.local()


def sleep(environ, start_response):
    """Sleeps QUERY_STRING seconds, then says which thread it ran on."""
    seconds = float(environ.get("QUERY_STRING") or "0.5")
    environ["wsgi.errors"].write("sleep: start %.2f\n" % seconds)
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept %.2f\n" % seconds]


def thread_state(environ, start_response):
    """A thread-local survives between requests served by the same thread
    (what keeps a framework's per-thread database connection open)."""
    _local.count = getattr(_local, "count", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = "%s %d %s\n" % (threading.current_thread().name, _local.count,
                           threading.current_thread() is threading.main_thread())
    return [body.encode()]


class _Closing:
    """Yields chunks forever, sleeping between them; logs its close()."""

    def __init__(self, environ):
        self.errors = environ["wsgi.errors"]

    def __iter__(self):
        while True:
            yield b"x" * 1024
            time.sleep(0.01)

    def close(self):
        self.errors.write("endless: close() called\n")
        self.errors.flush()


def endless(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _Closing(environ)


class _SleepThenYield:
    """Sleeps QUERY_STRING seconds (0.5) before its only chunk; logs its close()."""

    def __init__(self, environ):
        self.errors = environ["wsgi.errors"]
        self.seconds = float(environ.get("QUERY_STRING") or "0.5")

    def __iter__(self):
        time.sleep(self.seconds)
        yield b"late\n"

    def close(self):
        self.errors.write("sleep_then_yield: close() called\n")
        self.errors.flush()


def sleep_then_yield(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _SleepThenYield(environ)
