"""Apps for the streaming tests (t/011-streaming.t, t/012-backpressure.t)."""

import os
import time


def first_then_sleep(environ, start_response):
    """The first chunk must reach the client before the app's pause ends."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first chunk\n"
    time.sleep(1.5)
    yield b"second chunk\n"


def flush_then_sleep(environ, start_response):
    """Under wsgi_buffering on, only the explicit flush sends the first chunk."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"flushed chunk\n"
    environ["x-wsgiorg.flush"]()
    time.sleep(1.5)
    yield b"after the pause\n"


def accel_yes_then_sleep(environ, start_response):
    """X-Accel-Buffering: yes from the app turns batching on for this response."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Accel-Buffering", "yes")])
    yield b"held chunk\n"
    time.sleep(1.5)
    yield b"after the pause\n"


def accel_no_then_sleep(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Accel-Buffering", "no")])
    yield b"first chunk\n"
    time.sleep(1.5)
    yield b"second chunk\n"


def many_small(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(100):
        yield b"%03d\n" % i


CHUNK = bytes(range(256)) * 256  # 64 KiB


def big_stream(environ, start_response):
    """2 MiB in 64 KiB chunks; close() reports how long the app was kept
    producing, which shows whether it was suspended for a slow client."""
    return _counted_stream(environ, start_response, "big_stream", CHUNK)


def small_stream(environ, start_response):
    """big_stream in 1 KiB chunks (the ones the module copies together when
    it batches them)."""
    return _counted_stream(environ, start_response, "small_stream", CHUNK[:1024])


def _counted_stream(environ, start_response, name, chunk):
    """QUERY_STRING (default 32) chunks; close() logs how many were made."""
    errors = environ["wsgi.errors"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    class Body:
        def __init__(self):
            self.chunks = 0
            self.started = None

        def __iter__(self):
            self.started = time.monotonic()
            for _ in range(int(environ.get("QUERY_STRING") or 32)):
                self.chunks += 1
                yield chunk

        def close(self):
            took = time.monotonic() - (self.started or time.monotonic())
            errors.write(f"{name}: close() after {self.chunks} chunks, {took:.2f} s\n")

    return Body()


def empty_chunks(environ, start_response):
    """Empty chunks for 2 s: nothing to send, so nothing ever blocks; only
    the module's per-turn budget lets the worker's other requests in."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        yield b""
    yield b"done\n"
    environ["wsgi.errors"].write("empty_chunks: done\n")


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello\n"]


# Chunk sizes around the module's copy limits (chunks of up to 4 KiB may be
# copied behind one another into 16 KiB buffers of its own) and far past
# them; piece i is made of the letter chr(65 + i % 26). t/011 rebuilds it.
MIXED_SIZES = [1, 4096, 4097, 3, 0, 65536, 10] + [4096] * 5 + [2, 16383, 1, 65537] + [700] * 40 + [5]


def mixed_sizes(environ, start_response):
    """MIXED_SIZES as chunks; with ?flush, x-wsgiorg.flush() after the 8th."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    flush = environ.get("QUERY_STRING") == "flush"
    for i, size in enumerate(MIXED_SIZES):
        yield bytes([65 + i % 26]) * size
        if flush and i == 7:
            environ["x-wsgiorg.flush"]()


def random_then_sleep(environ, start_response):
    """512 KiB that gzip cannot shrink, then a 2 s pause, then a last chunk."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    yield os.urandom(512 * 1024)
    time.sleep(2)
    yield b"end\n"


def big_then_raise(environ, start_response):
    """200 KiB (within thread mode's hand-off window), then an exception:
    the response is cut after them."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    yield b"x" * (200 << 10)
    raise RuntimeError("big_then_raise: failing after the first chunk")
