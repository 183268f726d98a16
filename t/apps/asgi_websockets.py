"""WebSocket apps for t/029-asgi-websocket.t: each path a behaviour."""

import asyncio

events = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        body = repr(events).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
        return
    route = ROUTES.get(scope["path"].rsplit("/", 1)[-1])
    await route(scope, receive, send)


async def echo(scope, receive, send):
    """Accepts (with the first subprotocol offered), echoes every message
    until the client closes; records the close code."""
    message = await receive()
    assert message["type"] == "websocket.connect", message
    protocols = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": protocols[0] if protocols else None,
                "headers": [(b"x-echo", b"yes")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            events.append(("echo closed", message["code"]))
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_route(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    shown = {k: scope[k] for k in ("type", "scheme", "path", "query_string", "http_version", "subprotocols")}
    shown["query_string"] = shown["query_string"].decode()
    shown["has_method"] = "method" in scope
    await send({"type": "websocket.send", "text": repr(shown)})
    await send({"type": "websocket.close", "code": 4000, "reason": "done"})


async def deny(scope, receive, send):
    await receive()
    await send({"type": "websocket.close"})


async def deny_response(scope, receive, send):
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "websocket.http.response.body", "body": b"no entry\n"})


async def server_close(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})
    await send({"type": "websocket.close", "code": 4001, "reason": "server says bye"})
    message = await receive()
    events.append(("server_close then", message["type"]))


async def returns(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "returning"})


async def raises(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    raise ValueError("the WebSocket app failed on purpose")


async def bad_message(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": b"bytes as text"})


async def flood(scope, receive, send):
    """Sends `n` messages of 64 KiB as fast as send() lets it; records how
    many sends waited for the client."""
    await receive()
    await send({"type": "websocket.accept"})
    n = int(scope["query_string"] or b"128")
    loop = asyncio.get_running_loop()
    waited = 0
    progress["sent"] = 0
    for i in range(n):
        start = loop.time()
        await send({"type": "websocket.send", "bytes": bytes([i % 256]) * 65536})
        progress["sent"] += 1
        if loop.time() - start > 0.01:
            waited += 1
    events.append(("flood waited", waited))
    await send({"type": "websocket.close", "code": 1000})


async def slow_reader(scope, receive, send):
    """Accepts, then takes no message for 1 s: nginx must stop reading."""
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(1)
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
        count += 1
        if message.get("text") == "last":
            await send({"type": "websocket.send", "text": f"got {count}"})
    events.append(("slow_reader got", count))


async def sizes(scope, receive, send):
    """Answers each message with its length."""
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            events.append(("sizes closed", message["code"]))
            return
        data = message.get("bytes") or message.get("text", "").encode()
        await send({"type": "websocket.send", "text": str(len(data))})


progress = {"sent": 0}


async def show_progress(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": str(progress["sent"])})
    await send({"type": "websocket.close"})


async def idle(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    events.append(("idle closed", message["code"]))


ROUTES = {
    "echo": echo,
    "scope": scope_route,
    "deny": deny,
    "deny_response": deny_response,
    "server_close": server_close,
    "returns": returns,
    "raises": raises,
    "bad_message": bad_message,
    "flood": flood,
    "slow_reader": slow_reader,
    "sizes": sizes,
    "progress": show_progress,
    "idle": idle,
}
