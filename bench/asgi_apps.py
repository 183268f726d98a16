"""The ASGI app of bench/asgi.py, the same for every server (ngx_wsgi's
`asgi_pass`, granian, uvicorn, hypercorn):

/hello   13 bytes of text with Content-Length
/stream  STREAM_CHUNKS x 1 KiB, each its own send with more_body=True (no
         Content-Length): a server must flush each one, so the case counts
         what a send costs
/upload  a POST: reads the body to its end through receive() and answers
         its length (bench/asgi.py sends UPLOAD_SIZE bytes)
/ws      a WebSocket that sends each message back as it came (bytes or
         text), until the client closes
It runs lifespan, as apps built on a framework do: every server then goes
through its startup and shutdown.
"""

HELLO = b"Hello, world!"
KIB = b"a" * 1024
STREAM_CHUNKS = 64
STREAM = KIB * STREAM_CHUNKS  # what a client of /stream reads
TEXT = (b"content-type", b"text/plain")
UPLOAD_SIZE = 64 * 1024
UPLOADED = b"%d" % UPLOAD_SIZE  # what /upload answers to a body of that size


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "websocket":
        return await echo(scope, receive, send)
    path = scope["path"]
    if path == "/hello":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [TEXT, (b"content-length", b"%d" % len(HELLO))]})
        await send({"type": "http.response.body", "body": HELLO})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [TEXT]})
        for _ in range(STREAM_CHUNKS):
            await send({"type": "http.response.body", "body": KIB, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/upload":
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        answer = b"%d" % size
        await send({"type": "http.response.start", "status": 200,
                    "headers": [TEXT, (b"content-length", b"%d" % len(answer))]})
        await send({"type": "http.response.body", "body": answer})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [TEXT]})
        await send({"type": "http.response.body", "body": b"not found\n"})


async def echo(scope, receive, send):
    await receive()  # websocket.connect
    if scope["path"] != "/ws":
        return await send({"type": "websocket.close"})  # a 403 to the handshake
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        # The other key left out, not None: ASGI allows both, and no server
        # can misread a key that is not there.
        key = "bytes" if message.get("bytes") is not None else "text"
        await send({"type": "websocket.send", key: message[key]})


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
