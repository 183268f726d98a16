"""Apps for the worker-recycling tests (t/015-recycling.t). Each answers
with a Content-Length, so a keep-alive client knows where a response ends."""

import os
import time

# What `leak` holds on to: it grows with every request this worker serves.
_leaked = []


def _answer(start_response, body):
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def pid(environ, start_response):
    """Says which worker process answered."""
    return _answer(start_response, "pid %d\n" % os.getpid())


def sleep_pid(environ, start_response):
    """Sleeps QUERY_STRING seconds (0.1), then says which worker answered."""
    time.sleep(float(environ.get("QUERY_STRING") or "0.1"))
    return _answer(start_response, "pid %d\n" % os.getpid())


def leak(environ, start_response):
    """Leaks 20 MiB per request (touched, so it is resident); says which
    worker answered and how many MiB it now holds."""
    _leaked.append(b"x" * (20 << 20))
    return _answer(start_response, "pid %d leaked %d\n" % (os.getpid(), 20 * len(_leaked)))
