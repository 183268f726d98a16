"""Apps for bench/streaming.py."""

import time

CHUNK = bytes(range(256)) * 256  # 64 KiB, yielded again and again


def big(environ, start_response):
    """300 MiB in 64 KiB chunks, as fast as the module asks for them."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(300 * 16):
        yield CHUNK


def pause(environ, start_response):
    """A first chunk, then a 1 s pause: time to first chunk is what counts."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first chunk\n"
    time.sleep(1.0)
    yield b"second chunk\n"
