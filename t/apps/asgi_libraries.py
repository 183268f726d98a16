"""For t/027-asgi-events.t: libraries that use the running asyncio loop,
from an app on the loop nginx's worker steps. Each fetches /static from
the same nginx, which the same worker serves while the app awaits (one
worker: were the loop blocking nginx, the fetch would never come back)."""

import asyncio
import time

import httpx2


def in_a_thread():
    time.sleep(0.1)
    return "from a thread"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    port = scope["server"][1]
    url = f"http://127.0.0.1:{port}/static"
    found = {}
    async with httpx2.AsyncClient() as client:
        found["httpx2.AsyncClient"] = (await client.get(url)).text.strip()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /static HTTP/1.0\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    found["asyncio.open_connection"] = answer.partition(b"\r\n\r\n")[2].decode().strip()
    loop = asyncio.get_running_loop()
    found["run_in_executor"] = await loop.run_in_executor(None, in_a_thread)
    found["asyncio.to_thread"] = await asyncio.to_thread(in_a_thread)
    found["asyncio.wait_for"] = await asyncio.wait_for(asyncio.sleep(0.05, "slept"), 5)
    body = "".join(f"{name}: {value}\n" for name, value in found.items()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
