"""Apps for the PEP 3333 conformance tests (t/005 ... t/009)."""

import json
from wsgiref.util import application_uri, request_uri
from wsgiref.validate import validator


def _text(start_response, body, status="200 OK", headers=()):
    data = body.encode("latin-1") if isinstance(body, str) else body
    start_response(status, [("Content-Type", "text/plain")] + list(headers))
    return [data]


def environ_json(environ, start_response):
    """The environ's str/bool/int/tuple values as JSON; others by type name."""
    out = {}
    for key, value in environ.items():
        if isinstance(value, (str, bool, int)):
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = type(value).__name__
    return _text(start_response, json.dumps(out, sort_keys=True) + "\n",
                 headers=[("Content-Type", "application/json")])


def params_parity(environ, start_response):
    """Compares the environ with nginx's stock uwsgi_params and
    fastcgi_params: for each SET in PARITY_SETS, PARITY_<SET> names the keys
    of that file and <SET>_<KEY> holds the file's value (the file's lines
    turned into wsgi_params under that prefix). Absent and empty are the
    same (PEP 3333: CONTENT_TYPE, CONTENT_LENGTH)."""
    lines = []
    for name in environ["PARITY_SETS"].split():
        keys = environ[f"PARITY_{name}"].split()
        differ = []
        for key in keys:
            ours = environ.get(key) or ""
            theirs = environ.get(f"{name}_{key}") or ""
            if ours != theirs:
                differ.append(f"{key}: {ours!r} here, {theirs!r} from {name.lower()}_params")
        lines.append(f"{name.lower()}_params: {len(keys)} keys, {len(differ)} differ")
        lines += differ
    return _text(start_response, "\n".join(lines) + "\n")


def urls(environ, start_response):
    """URLs rebuilt the way frameworks do, from SCRIPT_NAME and PATH_INFO."""
    lines = [
        f"SCRIPT_NAME={environ['SCRIPT_NAME']}",
        f"PATH_INFO={environ['PATH_INFO']}",
        f"application_uri={application_uri(environ)}",
        f"request_uri={request_uri(environ)}",
    ]
    return _text(start_response, "\n".join(lines) + "\n")


def path_bytes(environ, start_response):
    """PATH_INFO as the original bytes, the way PEP 3333 apps recover them."""
    raw = environ["PATH_INFO"].encode("latin-1")
    return _text(start_response, raw + b"\n")


# --- response framing -------------------------------------------------------

def longer_than_declared(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"123", b"4567890"]


def shorter_than_declared(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"only a little\n"]


class Tracked:
    def __init__(self, environ, parts, name):
        self.errors = environ["wsgi.errors"]
        self.parts = parts
        self.name = name

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        self.errors.write(f"{self.name}: close() called\n")


def head_with_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return Tracked(environ, [b"hello world\n"], "head")


def no_content(environ, start_response):
    start_response("204 No Content", [("Content-Type", "text/plain")])
    return Tracked(environ, [b"a body 204 must not have\n"], "204")


def not_modified(environ, start_response):
    start_response("304 Not Modified", [("ETag", '"v1"')])
    return Tracked(environ, [b"a body 304 must not have\n"], "304")


def one_item_tuple(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"tuple body\n",)


def write_then_yield(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        write(b"written 1\n")
        yield b"yielded 1\n"
        write(b"written 2\n")
        yield b"yielded 2\n"
    return body()


# --- wsgi.input -------------------------------------------------------------

def input_calls(environ, start_response):
    """Exercises every wsgi.input method on the body "l1\\nline 2\\nl3\\nrest"."""
    stream = environ["wsgi.input"]
    out = [
        repr(stream.read(2)),
        repr(stream.readline()),
        repr(stream.readline(3)),
        repr(stream.readline()),
        repr(stream.readlines()),
        repr(stream.read()),
    ]
    return _text(start_response, "\n".join(out) + "\n")


def input_iter(environ, start_response):
    lines = [repr(line) for line in environ["wsgi.input"]]
    return _text(start_response, "\n".join(lines) + "\n")


def input_size(environ, start_response):
    body = environ["wsgi.input"].read()
    return _text(start_response, f"{environ.get('CONTENT_LENGTH')} {len(body)}\n")


# --- wsgi.errors ------------------------------------------------------------

def errors_lines(environ, start_response):
    errors = environ["wsgi.errors"]
    errors.write("first line\nsecond ")
    errors.write("line\n")
    errors.writelines(["third line\n", "unterminated"])
    errors.flush()
    return _text(start_response, "logged\n")


# --- file_wrapper -----------------------------------------------------------

def file_wrapper(environ, start_response):
    import io
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 1000), 4096)


# --- wsgiref.validate -------------------------------------------------------

def _plain(environ, start_response):
    # Under the validator, read() must be given a size (PEP 3333).
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body) + 3))])
    return [b"ok:", body]


def _generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield b"part %d\n" % i


def _lines(environ, start_response):
    stream = environ["wsgi.input"]
    first = stream.readline()
    rest = stream.readlines()
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [first, b"|".join(rest), b"\n"]


def _errors(environ, start_response):
    environ["wsgi.errors"].write("validated app writes to wsgi.errors\n")
    environ["wsgi.errors"].flush()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing here\n"]


validated_plain = validator(_plain)
validated_generator = validator(_generator)
validated_lines = validator(_lines)
validated_errors = validator(_errors)
validated_environ = validator(environ_json)


def errors_from_thread(environ, start_response):
    """wsgi.errors written from a thread of the app's own."""
    import threading
    errors = environ["wsgi.errors"]
    t = threading.Thread(target=lambda: errors.write("line from an app thread\n"))
    t.start()
    t.join()
    return _text(start_response, "done\n")
