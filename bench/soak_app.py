"""The soak's app (bench/soak.py). Every streamed response is a counted
iterable: its creation and its close() each append a byte to a file in
COUNTS, so the soak knows, across workers and reloads, whether every
iterable the module was handed got closed.

/hello    13 bytes with Content-Length
/10k      10,240 bytes with Content-Length
/stream   16 x 1 KiB, counted, flushed (x-wsgiorg.flush) after the 8th
/long     4 MiB in 16 KiB chunks, counted: the aborting clients' stream
/broken   2 x 1 KiB, counted, then the iterable raises
/error    raises before start_response (500)
/upload   reads the request body: "<length> <crc32>"
/objects  after gc.collect(): "<pid> <gc-tracked objects> <allocated blocks>"
"""

import gc
import os
import sys
import zlib

COUNTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "soak", "counts")
HELLO = b"Hello, world!"
TEN_K = b"x" * 10240
KIB = b"s" * 1024
LONG_CHUNK = b"l" * 16384


def _counter(name):
    os.makedirs(COUNTS, exist_ok=True)
    return os.open(os.path.join(COUNTS, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)


# Opened in each worker (the module starts Python there); O_APPEND makes
# each one-byte write atomic among workers and threads.
CREATED, CLOSED = _counter("created"), _counter("closed")


class Counted:
    """An iterable over `chunks` whose creation and close() are counted; with
    `flush`, it flushes after that many chunks; with `fail_after`, it
    raises once that many were given."""

    def __init__(self, chunks, flush=None, fail_after=None, environ=None):
        self.chunks = iter(chunks)
        self.sent = 0
        self.flush_after, self.fail_after = flush, fail_after
        self.flush = environ.get("x-wsgiorg.flush") if environ else None
        self.closed = False
        os.write(CREATED, b".")

    def __iter__(self):
        return self

    def __next__(self):
        if self.fail_after is not None and self.sent == self.fail_after:
            raise RuntimeError("the soak's broken iterable, as planned")
        if self.flush is not None and self.sent == self.flush_after:
            self.flush()
        self.sent += 1
        return next(self.chunks)

    def close(self):
        if not self.closed:  # PEP 3333 asks for one call; count one
            self.closed = True
            os.write(CLOSED, b".")


def _fixed(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _upload(environ):
    stream = environ["wsgi.input"]
    size, crc = 0, 0
    while True:
        piece = stream.read(16384)
        if not piece:
            return b"%d %d" % (size, crc)
        size += len(piece)
        crc = zlib.crc32(piece, crc)


def application(environ, start_response):
    path = environ["PATH_INFO"].rsplit("/", 1)[-1]
    if path == "hello":
        return _fixed(start_response, HELLO)
    if path == "10k":
        return _fixed(start_response, TEN_K)
    if path == "stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted([KIB] * 16, flush=8, environ=environ)
    if path == "long":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Counted([LONG_CHUNK] * 256)
    if path == "broken":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted([KIB] * 16, fail_after=2)
    if path == "error":
        raise RuntimeError("the soak's app error, as planned")
    if path == "upload":
        return _fixed(start_response, _upload(environ))
    if path == "objects":
        gc.collect()
        return _fixed(start_response, b"%d %d %d" % (os.getpid(), len(gc.get_objects()), sys.getallocatedblocks()))
    return _fixed(start_response, b"not found\n", "404 Not Found")
