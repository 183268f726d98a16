"""The benchmark app: one WSGI callable every server runs (bench/run.py).

/hello   13 bytes with Content-Length
/10k     10,240 bytes with Content-Length
/stream  a generator of 100 x 1 KiB chunks, no Content-Length
/1m      one 1 MiB bytes object with Content-Length
/slow    a generator of 50 MiB in 64 KiB chunks (the slow-client case)
/sleep50 sleeps 50 ms, then 12 bytes (bench/threads.py: an app that waits on
         I/O); its X-Multithread header is environ["wsgi.multithread"]
/upload  reads the request body in 64 KiB pieces (bench/uploads.py): its
         SHA-256, its length, and the time its first read returned
/file    FILE (bench/files.py makes it) through wsgi.file_wrapper, with its
         Content-Length
/xaccel  X-Accel-Redirect: /protected/ and FILE's name (bench/files.py)
"""

import hashlib
import os
import time
from wsgiref.util import FileWrapper

HELLO = b"Hello, world!"
SLEPT = b"slept 50 ms\n"
TEN_K = b"x" * 10240
ONE_M = b"m" * (1 << 20)
KIB = b"s" * 1024
SLOW_CHUNK = b"w" * 65536
FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "bench", "files", "100m.bin")


def _stream():
    for _ in range(100):
        yield KIB


def _slow():
    for _ in range(50 * 16):
        yield SLOW_CHUNK


def _upload(environ):
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    size, first = 0, None
    while True:
        piece = stream.read(65536)
        if first is None:
            first = time.time()
        if not piece:
            break
        digest.update(piece)
        size += len(piece)
    return b"%s %d %.6f\n" % (digest.hexdigest().encode(), size, first)


def _fixed(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        return _fixed(start_response, HELLO)
    if path == "/10k":
        return _fixed(start_response, TEN_K)
    if path == "/1m":
        return _fixed(start_response, ONE_M)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/sleep50":
        time.sleep(0.05)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(SLEPT))),
                                  ("X-Multithread", str(environ["wsgi.multithread"]))])
        return [SLEPT]
    if path == "/slow":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _slow()
    if path == "/upload":
        return _fixed(start_response, _upload(environ))
    if path == "/file":
        f = open(FILE, "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
        # wsgi.file_wrapper is optional (granian has none): as apps do,
        # fall back to wsgiref's, which is iterated.
        return environ.get("wsgi.file_wrapper", FileWrapper)(f, 65536)
    if path == "/xaccel":
        name = os.path.basename(FILE)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Accel-Redirect", "/protected/" + name)])
        return []
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
