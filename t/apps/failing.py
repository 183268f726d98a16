"""Apps that get WSGI wrong, for t/002-errors.t."""


def raises(environ, start_response):
    raise ValueError("the app broke on purpose")


def raises_mid_stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first part\n"
    raise RuntimeError("broke after the header was sent")


class Closing:
    def __init__(self, environ, parts, fail_at=None):
        self.errors = environ["wsgi.errors"]
        self.parts = parts
        self.fail_at = fail_at

    def __iter__(self):
        for i, part in enumerate(self.parts):
            if i == self.fail_at:
                raise KeyError("iteration failed")
            yield part

    def close(self):
        self.errors.write("failing app: close() called\n")


def raises_in_iteration_with_close(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(environ, [b"x", b"y"], fail_at=0)


def bad_status(environ, start_response):
    start_response("200", [("Content-Type", "text/plain")])
    return [b"never sent\n"]


def crlf_header(environ, start_response):
    start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
    return [b"never sent\n"]


def str_chunk(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str, not bytes"]


def returns_none(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return None


def no_start_response(environ, start_response):
    return [b"body without a status\n"]


def system_exit(environ, start_response):
    raise SystemExit(3)


def second_start_response(environ, start_response):
    start_response("200 OK", [])
    start_response("500 Oops", [])
    return [b"never sent\n"]


def exc_info_replaces(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise LookupError("handled")
    except LookupError:
        import sys
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced\n"]


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"still serving\n"]


def bad_shapes(environ, start_response):
    """start_response called with the wrong types, chosen by QUERY_STRING."""
    cases = {
        "dict": lambda: start_response("200 OK", {"Content-Type": "text/plain"}),
        "triple": lambda: start_response("200 OK", [("A", "b", "c")]),
        "bytes-value": lambda: start_response("200 OK", [("X-Bytes", b"raw")]),
        "bytes-status": lambda: start_response(b"200 OK", []),
        "wide": lambda: start_response("200 OK", [("X-Wide", "\u263a")]),
        "bad-length": lambda: start_response("200 OK", [("Content-Length", "ten")]),
        "write-str": lambda: start_response("200 OK", [])("text"),
        "hop-by-hop": lambda: start_response("200 OK", [("Connection", "close")]),
        "bad-name": lambda: start_response("200 OK", [("Bad Name", "v")]),
        "wide-status": lambda: start_response("200 \u263a", []),
    }
    cases[environ["QUERY_STRING"]]()
    return [b"never sent\n"]
