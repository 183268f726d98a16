"""Apps for thread mode's spill to a temp file (t/019-spill.t)."""

import struct
import time

CHUNK = 65536
BIG_CHUNKS = 320  # 20 MiB


def piece(i):
    """Chunk i: its number, over and over, so that order can be checked."""
    return struct.pack(">I", i) * (CHUNK // 4)


def big(environ, start_response):
    """20 MiB in 64 KiB chunks, produced as fast as the thread may."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(BIG_CHUNKS * CHUNK))])
    for i in range(BIG_CHUNKS):
        if i == BIG_CHUNKS - 1:
            # (The driver stops at the Content-Length: nothing after the
            # last yield runs.)
            environ["wsgi.errors"].write("the app produced all of it\n")
        yield piece(i)


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"hello\n"]


def flushed(environ, start_response):
    """4 MiB at once, then MARK flushed, then a 2 s pause, then END."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for i in range(64):
        yield piece(i)
    yield b"MARK"
    environ["x-wsgiorg.flush"]()
    time.sleep(2)
    yield b"END"
