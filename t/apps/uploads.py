"""Apps for bodies read as they arrive (wsgi_request_buffering off,
t/018-uploads.t)."""

import os

from bodies import _text, digest, sha256  # noqa: F401 (sha256 is an app too)


def first_read(environ, start_response):
    """Says in error_log when it is called and when its first read(16)
    returns, then reads the rest: its length."""
    errors = environ["wsgi.errors"]
    stream = environ["wsgi.input"]
    errors.write("called, CONTENT_LENGTH=%r\n" % environ.get("CONTENT_LENGTH"))
    first = stream.read(16)
    errors.write("first read: %r\n" % first)
    rest = stream.read()
    return _text(start_response, "%d\n" % (len(first) + len(rest)))


def echo_lines(environ, start_response):
    """Sends each line of the body back as soon as it has read it."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    flush = environ["x-wsgiorg.flush"]
    for line in environ["wsgi.input"]:
        yield b"echo: " + line
        flush()


def lines(environ, start_response):
    """readline(), readline(n), readlines() and iteration on one body."""
    stream = environ["wsgi.input"]
    out = [stream.readline(), stream.readline(3), stream.readline()]
    out += stream.readlines(1)
    out += list(stream)
    out.append(stream.read())
    return _text(start_response, repr(out) + "\n")


class Reader:
    """Reads the body in 64 KiB pieces as it is iterated, and reports how
    that ended in error_log; its close() says so too."""

    def __init__(self, environ, start_response):
        self.environ = environ
        self.start_response = start_response
        self.errors = environ["wsgi.errors"]
        self.errors.write("the reader is called\n")

    def __iter__(self):
        stream = self.environ["wsgi.input"]
        size = 0
        try:
            while True:
                piece = stream.read(65536)
                if not piece:
                    break
                size += len(piece)
        except OSError as e:
            self.errors.write(
                "read() raised %s (an OSError: %s) errno=%s after %d bytes: %s\n"
                % (type(e).__name__, isinstance(e, OSError), e.errno, size, e.strerror)
            )
            raise
        body = b"%d\n" % size
        self.start_response("200 OK", [("Content-Length", str(len(body)))])
        yield body

    def close(self):
        self.errors.write("close() ran\n")


def slow_sha256(environ, start_response):
    """As bodies.sha256, reading 64 KiB every 10 ms (6.4 MB/s at most)."""
    return digest(environ, start_response, pause=0.01)


def ignores(environ, start_response):
    """Answers without reading the body: the worker's pid."""
    return _text(start_response, "%d\n" % os.getpid())
