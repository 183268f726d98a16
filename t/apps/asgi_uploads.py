"""ASGI apps for bodies read as they arrive (wsgi_request_buffering off
under asgi_pass, t/030-asgi-uploads.t). Each says what it saw in
error_log (the worker's stderr)."""

import asyncio
import hashlib
import os
import sys

from bodies import _rss


def say(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


async def text(send, body):
    body = body.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def header(scope, name):
    for key, value in scope["headers"]:
        if key == name:
            return value.decode()
    return None


async def first(scope, receive, send):
    """Says when it is called and what the first message holds, then reads
    the rest: its length."""
    say("called, content-length=%r" % header(scope, b"content-length"))
    message = await receive()
    size = len(message["body"])
    say("first message: %r more_body=%r" % (message["body"], message["more_body"]))
    while message.get("more_body"):
        message = await receive()
        size += len(message["body"])
    await text(send, "%d\n" % size)


async def echo(scope, receive, send):
    """Sends each piece of the body back as soon as it has it."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    while True:
        message = await receive()
        if message["body"]:
            await send({"type": "http.response.body", "body": b"echo: " + message["body"],
                        "more_body": True})
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b""})


async def digest(scope, receive, send, pause=0.0):
    """The body's SHA-256, its length, the worker's highest RSS while
    reading, and the largest message; `pause` s after each message."""
    sha = hashlib.sha256()
    size = largest = messages = 0
    peak = _rss()
    while True:
        message = await receive()
        body = message["body"]
        sha.update(body)
        size += len(body)
        messages += 1
        largest = max(largest, len(body))
        if messages % 64 == 0:
            peak = max(peak, _rss())
        if pause:
            await asyncio.sleep(pause)
        if not message.get("more_body"):
            break
    await text(send, "%s %d %d %d\n" % (sha.hexdigest(), size, peak, largest))


async def sha256(scope, receive, send):
    await digest(scope, receive, send)


async def slow_sha256(scope, receive, send):
    """As sha256, 10 ms after each message."""
    await digest(scope, receive, send, pause=0.01)


async def ignores(scope, receive, send):
    """Answers without reading the body: the worker's pid."""
    await text(send, "%d\n" % os.getpid())


async def rss(scope, receive, send):
    await text(send, "%d\n" % _rss())


async def reader(scope, receive, send):
    """Reads the body and says how that ended."""
    say("the reader is called")
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                say("receive() gave http.disconnect after %d bytes" % size)
                return
            size += len(message["body"])
            if not message.get("more_body"):
                break
    except asyncio.CancelledError:
        say("the reader's task was cancelled after %d bytes" % size)
        raise
    await text(send, "%d\n" % size)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    route = ROUTES.get(scope["path"].rsplit("/", 1)[-1])
    if route is None:
        await text(send, "no route\n")
        return
    await route(scope, receive, send)


ROUTES = {
    "first": first,
    "echo": echo,
    "sha256": sha256,
    "slow": slow_sha256,
    "patient": sha256,
    "ignores": ignores,
    "rss": rss,
    "reader": reader,
}
