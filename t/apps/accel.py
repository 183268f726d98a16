"""Apps for the X-Accel-* tests (t/020, t/021): responses that ask nginx to
act, as apps behind uwsgi_pass or proxy_pass do."""

from urllib.parse import parse_qsl


class _Body:
    """A body that says when close() is called, and which app it came from."""

    def __init__(self, environ, name, data):
        self.errors = environ["wsgi.errors"]
        self.name = name
        self.data = data

    def __iter__(self):
        yield self.data

    def close(self):
        self.errors.write("%s: close() called\n" % self.name)


def redirect(environ, start_response):
    """X-Accel-Redirect to ?to=...; the other fields say which ones an
    internal redirect keeps; the body must never reach the client."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    headers = [
        ("Content-Type", query.get("type", "text/x-from-app")),
        ("Content-Disposition", 'attachment; filename="report.txt"'),
        ("Set-Cookie", "seen=1; Path=/"),
        ("Cache-Control", "private"),
        ("X-From-App", "not kept by a redirect"),
        ("X-Accel-Redirect", query["to"]),
        ("X-Accel-Expires", "60"),
    ]
    if "rate" in query:
        headers.append(("X-Accel-Limit-Rate", query["rate"]))
    start_response("200 OK", headers)
    return _Body(environ, "redirect", b"the app's own body, which must not be sent\n")


def second(environ, start_response):
    """The target of a redirect that is an app of its own."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Body(environ, "second", b"second app: %s %s\n" % (
        environ["REQUEST_METHOD"].encode(), environ["PATH_INFO"].encode()))


def fields(environ, start_response):
    """A plain response with the X-Accel field and value ?name=&value=."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    start_response("200 OK", [("Content-Type", "text/plain"), (query["name"], query["value"])])
    return _Body(environ, "fields", b"the app's body\n")


def sized(environ, start_response):
    """?kib= KiB of body, with X-Accel-Limit-Rate ?rate= if given."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    headers = [("Content-Type", "application/octet-stream")]
    if "rate" in query:
        headers.append(("X-Accel-Limit-Rate", query["rate"]))
    start_response("200 OK", headers)
    return [b"x" * (int(query["kib"]) * 1024)]
