"""The example app `make run` serves: the request's environ as a page, a
streaming endpoint that shows chunks arriving as they are produced, and an
upload endpoint that reads the body as the client sends it."""

import hashlib
import html
import sys
import time


def environ_page(environ, start_response):
    rows = "\n".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(repr(value))}</td></tr>"
        for key, value in sorted(environ.items())
    )
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ngx_wsgi</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
 table {{ border-collapse: collapse; }}
 th, td {{ text-align: left; padding: .2rem .8rem; border-bottom: 1px solid #ddd;
          font-family: ui-monospace, monospace; font-size: 90%; }}
 th {{ color: #555; }}
</style></head>
<body>
<h1>Hello from Python {sys.version.split()[0]} inside nginx</h1>
<p>This page is a WSGI app running in an nginx worker through <code>wsgi_pass</code>.
Try <a href="/stream">/stream</a> (chunks sent as they are produced, by an
app on a pool thread: <code>wsgi_threads</code>) and
<a href="/?hello=world">a query string</a>.</p>
<h2>The request's environ</h2>
<table>
{rows}
</table>
</body></html>
"""
    data = body.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(data)))])
    return [data]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    yield b"Counting, one line every 0.3 s:\n"
    for i in range(1, 11):
        time.sleep(0.3)
        yield f"{i}\n".encode()
    yield b"done\n"


def upload(environ, start_response):
    """Reads the body in 64 KiB pieces as it arrives (no temp file, no
    waiting for the end): its size and SHA-256."""
    stream = environ["wsgi.input"]
    digest, size = hashlib.sha256(), 0
    while piece := stream.read(65536):
        digest.update(piece)
        size += len(piece)
    body = f"{size} bytes, sha256 {digest.hexdigest()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    if environ["PATH_INFO"] == "/stream":
        return stream(environ, start_response)
    if environ["PATH_INFO"] == "/upload":
        return upload(environ, start_response)
    return environ_page(environ, start_response)
