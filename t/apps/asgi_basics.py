"""ASGI apps for t/026-asgi-http.t and t/027-asgi-events.t: one app with a
route per behaviour."""

import asyncio
import json
import os
import tempfile

events = []
# How far slow_client got.
progress = {"pieces": 0}


async def read_body(receive):
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def respond(send, status, body, headers=(), more=False):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    path = scope["path"]
    route = ROUTES.get(path.rsplit("/", 1)[-1] if path.startswith(scope["root_path"] or "/") else path)
    if route is None:
        return await respond(send, 404, b"no route " + path.encode())
    await route(scope, receive, send)


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = "yes"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            path = os.environ.get("ASGI_SHUTDOWN_FILE")
            if path:
                with open(path, "a") as f:
                    f.write("shutdown\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope, receive, send):
    await respond(send, 200, b"hello from asgi\n")


async def scope_route(scope, receive, send):
    shown = {k: v for k, v in scope.items() if k not in ("headers", "state", "extensions")}
    shown = {k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in shown.items()}
    shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    shown["state"] = dict(scope.get("state", {}))
    shown["params"] = scope["extensions"].get("nginx.params")
    await respond(send, 200, json.dumps(shown, sort_keys=True).encode())


async def echo(scope, receive, send):
    body = await read_body(receive)
    await respond(send, 200, b"%d bytes: " % len(body) + body[:32])


async def stream(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for i in range(5):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await asyncio.sleep(0.05)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def big(scope, receive, send):
    size = int(scope["query_string"] or b"1048576")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    chunk = b"x" * 65536
    sent = 0
    while sent < size:
        piece = chunk[: min(65536, size - sent)]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        sent += len(piece)
    await send({"type": "http.response.body", "body": b""})
    events.append(("big", sent))


async def sleep(scope, receive, send):
    await asyncio.sleep(float(scope["query_string"] or b"0.5"))
    await respond(send, 200, b"slept\n")


async def raises(scope, receive, send):
    raise ValueError("the app failed on purpose")


async def raises_late(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise ValueError("the app failed mid-body on purpose")


async def nothing(scope, receive, send):
    return None


async def bad_order(scope, receive, send):
    await send({"type": "http.response.body", "body": b"too early"})


async def bad_status(scope, receive, send):
    await send({"type": "http.response.start", "status": "200"})


async def bad_header(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-ok", b"fine"), ("x-text", "not bytes")]})


async def bad_header_value(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-evil", b"a\r\nx-injected: 1")]})


async def bad_body(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": "text, not bytes"})


async def after_complete(scope, receive, send):
    await respond(send, 200, b"done\n")
    try:
        await send({"type": "http.response.body", "body": b"more"})
    except RuntimeError as e:
        events.append(("after_complete", str(e)))


async def disconnect(scope, receive, send):
    await respond(send, 200, b"ok\n")
    message = await receive()
    events.append(("disconnect", message["type"]))


async def slow_client(scope, receive, send):
    """Streams 8 MiB in 64 KiB pieces; records how many sends waited."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    loop = asyncio.get_running_loop()
    waited = 0
    progress["pieces"] = 0
    for _ in range(128):
        start = loop.time()
        await send({"type": "http.response.body", "body": b"y" * 65536, "more_body": True})
        progress["pieces"] += 1
        if loop.time() - start > 0.01:
            waited += 1
    await send({"type": "http.response.body", "body": b""})
    events.append(("slow_client_waited", waited))


async def cancelled(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        events.append(("cancelled", scope["path"]))
        raise


async def show_progress(scope, receive, send):
    await respond(send, 200, b"%d" % progress["pieces"])


async def show_events(scope, receive, send):
    await respond(send, 200, json.dumps(events).encode())


async def trailers(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"body\n"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})


async def pathsend(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.pathsend", "path": __file__})


def twenty_bytes():
    """An open file of 20 known bytes, positioned at 2."""
    f = tempfile.TemporaryFile()
    f.write(b"0123456789abcdefghij")
    f.seek(2)
    return f


async def zerocopy(scope, receive, send):
    """http.response.zerocopysend after a body message: a range at an
    offset, then from the file's position (which moves), then to its end;
    the file closed before nginx has sent it."""
    assert "http.response.zerocopysend" in scope["extensions"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"[", "more_body": True})
    with twenty_bytes() as f:
        await send({"type": "http.response.zerocopysend", "file": f, "offset": 10, "count": 5,
                    "more_body": True})
        assert f.tell() == 2, f.tell()
        await send({"type": "http.response.zerocopysend", "file": f, "count": 3, "more_body": True})
        assert f.tell() == 5, f.tell()
        await send({"type": "http.response.zerocopysend", "file": f})
        assert f.tell() == 20, f.tell()


async def zerocopy_whole(scope, receive, send):
    """One zerocopysend message, the whole body: a Content-Length."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    with twenty_bytes() as f:
        await send({"type": "http.response.zerocopysend", "file": f, "offset": 0})


async def zerocopy_past_end(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    with twenty_bytes() as f:
        await send({"type": "http.response.zerocopysend", "file": f, "offset": 10, "count": 50})


async def zerocopy_not_a_file(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.zerocopysend", "file": b"data"})


async def status_204(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def background(scope, receive, send):
    await respond(send, 200, b"answered\n")
    await asyncio.sleep(0.2)
    events.append(("background", "ran after the response"))


async def accel(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-accel-redirect", b"/static/asgi_basics.py")]})
    await send({"type": "http.response.body", "body": b""})


async def blocking(scope, receive, send):
    import time
    time.sleep(float(scope["query_string"] or b"1"))
    await respond(send, 200, b"blocked\n")


ROUTES = {
    "hello": hello,
    "scope": scope_route,
    "echo": echo,
    "stream": stream,
    "big": big,
    "sleep": sleep,
    "raises": raises,
    "raises_late": raises_late,
    "nothing": nothing,
    "bad_order": bad_order,
    "bad_status": bad_status,
    "bad_header": bad_header,
    "bad_header_value": bad_header_value,
    "bad_body": bad_body,
    "after_complete": after_complete,
    "disconnect": disconnect,
    "slow_client": slow_client,
    "cancelled": cancelled,
    "events": show_events,
    "progress": show_progress,
    "trailers": trailers,
    "pathsend": pathsend,
    "zerocopy": zerocopy,
    "zerocopy_whole": zerocopy_whole,
    "zerocopy_past_end": zerocopy_past_end,
    "zerocopy_not_a_file": zerocopy_not_a_file,
    "204": status_204,
    "background": background,
    "accel": accel,
    "blocking": blocking,
}


async def failing_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "the database is down"})
        return
    await respond(send, 200, b"should not be reached\n")


async def no_lifespan(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']}")
    await respond(send, 200, b"no lifespan here\n")


def not_asgi(environ, start_response):
    start_response("200 OK", [])
    return [b"a WSGI app"]


class Asgi2:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await respond(send, 200, b"asgi 2 " + self.scope["method"].encode() + b"\n")
