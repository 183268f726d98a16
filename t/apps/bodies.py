"""Apps for large request bodies (t/017-bodies.t): the worker's memory
while an app reads a body nginx wrote to its temp file."""

import hashlib
import os
import time


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _text(start_response, text):
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def rss(environ, start_response):
    return _text(start_response, "%d\n" % _rss())


def digest(environ, start_response, pause=0.0):
    """Reads the body in 64 KiB pieces, `pause` s after each: its SHA-256,
    its length, and the worker's highest RSS while reading."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    size = 0
    peak = _rss()
    while True:
        piece = stream.read(65536)
        if not piece:
            break
        digest.update(piece)
        size += len(piece)
        if size % (1 << 20) == 0:
            peak = max(peak, _rss())
        if pause:
            time.sleep(pause)
    return _text(start_response, "%s %d %d\n" % (digest.hexdigest(), size, peak))


def sha256(environ, start_response):
    return digest(environ, start_response)


def logged(environ, start_response):
    """Says in error_log that it ran, then reads the body like sha256."""
    environ["wsgi.errors"].write("the app ran\n")
    return sha256(environ, start_response)
