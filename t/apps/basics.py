"""Apps for t/001-basics.t."""


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


def echo_environ(environ, start_response):
    """Lists the environ's str values as `KEY=value` lines, sorted."""
    keys = environ.get("QUERY_STRING", "").split("&") if environ.get("QUERY_STRING") else sorted(
        k for k, v in environ.items() if isinstance(v, str))
    lines = [f"{k}={environ.get(k, '<missing>')}" for k in keys]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(lines).encode("latin-1") + b"\n"]


def wsgi_keys(environ, start_response):
    keys = ["wsgi.version", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess",
            "wsgi.run_once", "wsgi.input_terminated"]
    lines = [f"{k}={environ[k]!r}" for k in keys]
    lines.append(f"wsgi.input.read={environ['wsgi.input'].read()!r}")
    lines.append(f"wsgi.errors.write={callable(environ['wsgi.errors'].write)}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(lines).encode() + b"\n"]


def custom_status(environ, start_response):
    start_response("418 I'm a teapot", [
        ("Content-Type", "application/x-tea"),
        ("X-Brew", "earl grey"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; Path=/"),
    ])
    return [b"short and stout\n"]


def two_cache_controls(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Cache-Control", "private"),
        ("Cache-Control", "no-transform"),
    ])
    return [b"cached?\n"]


def latin1_head(environ, start_response):
    """A status reason and a header value with latin-1 characters, the
    value padded with blanks (not part of a field value)."""
    start_response("200 Tr\u00e8s bien", [("X-Drink", " caf\u00e9\t"), ("Content-Type", "text/plain")])
    return [b"ok\n"]


def chunks(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(5):
        yield f"chunk {i}\n".encode()


def list_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one ", b"two ", b"three\n"]


class ClosingBody:
    """An iterable whose close() leaves a line in error_log."""

    def __init__(self, environ, parts):
        self.errors = environ["wsgi.errors"]
        self.parts = parts

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        self.errors.write(f"close() called after {len(self.parts)} parts\n")


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingBody(environ, [b"a", b"b", b"c\n"])


def post_echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REQUEST_METHOD']} {environ.get('CONTENT_TYPE')} "
            f"{environ.get('CONTENT_LENGTH')} ".encode() + body + b"\n"]


def empty(environ, start_response):
    start_response("204 No Content", [])
    return []


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"from write(); ")
    return [b"from the iterable\n"]


def lazy_start(environ, start_response):
    """A generator that calls start_response only when first advanced."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Lazy", "yes")])
    yield b"lazy\n"


def other_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"I am the other app\n"]
