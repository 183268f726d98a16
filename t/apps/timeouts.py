"""Apps for wsgi_read_timeout (t/016-read-timeout.t): calls that hang in
Python (interruptible) or in C (time.sleep), streams that pause, and
iterables that say when their close() runs."""

import os
import time


def spin(seconds):
    """Busy for `seconds` in Python code, where an exception can land."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def pid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pid %d\n" % os.getpid()]


def busy_call(environ, start_response):
    """The call itself never returns."""
    while True:
        pass


class Closing:
    """An iterable whose close() is reported on wsgi.errors."""

    def __init__(self, environ, items):
        self.errors = environ["wsgi.errors"]
        self.items = iter(items)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.items)()

    def close(self):
        self.errors.write("close() ran\n")
        self.errors.flush()


def busy_next(environ, start_response):
    """The first next() never returns: nothing was sent yet."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def forever():
        while True:
            pass

    return Closing(environ, [forever])


def pause_stream(environ, start_response):
    """A chunk, then a pause longer than the timeout (in Python code)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    seconds = float(environ.get("QUERY_STRING") or 3)
    return Closing(environ, [lambda: b"first\n", lambda: spin(seconds) or b"second\n"])


def steady_stream(environ, start_response):
    """A chunk every 0.5 s for 3 s: each next() is quick enough."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def tick(i):
        def item():
            if i:
                time.sleep(0.5)
            return b"tick %d\n" % i

        return item

    return Closing(environ, [tick(i) for i in range(7)])


def sleepy(environ, start_response):
    """Stuck in C: time.sleep is not interrupted by ReadTimeout."""
    time.sleep(float(environ.get("QUERY_STRING") or 30))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"woke up\n"]


def sleepy_next(environ, start_response):
    """A next() stuck in C for a while; its close() says when it ran."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    seconds = float(environ.get("QUERY_STRING") or 1.5)
    return Closing(environ, [lambda: time.sleep(seconds) or b"late\n"])


def catches_everything(environ, start_response):
    """Like a framework that turns every exception into a 500 page."""
    try:
        spin(30)
    except Exception as e:
        environ["wsgi.errors"].write(
            "caught %s, a TimeoutError: %s\n"
            % (type(e).__name__, isinstance(e, TimeoutError))
        )
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"the framework's error page\n"]
    start_response("200 OK", [])
    return [b"never\n"]


def two_seconds(environ, start_response):
    spin(2)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done in 2 s\n"]


def stuck_in_c(environ, start_response):
    """Stuck where no signal reaches: like C code that ignores them (the
    signal that interrupts inline calls is blocked, so time.sleep is not
    cut short)."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN + 3])
    try:
        time.sleep(float(environ.get("QUERY_STRING") or 30))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGRTMIN + 3])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"woke up\n"]
