"""Apps for the streaming tests (t/011-streaming.t, t/012-backpressure.t)."""

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
