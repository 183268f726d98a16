"""The WebSocket client of t/029-asgi-websocket.t: `ws_client.py PORT CASE`
runs one case against nginx with the `websockets` library (raw sockets for
the frames that library will not send) and prints what it saw, one
`name: value` line each, for the .t file to check."""

import asyncio
import os
import socket
import struct
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

PORT = int(sys.argv[1])
BASE = f"ws://127.0.0.1:{PORT}"


def say(name, value):
    print(f"{name}: {value}", flush=True)


async def echo():
    async with connect(f"{BASE}/ws/echo", subprotocols=["chat", "v2"], max_size=None) as ws:
        say("subprotocol", ws.subprotocol)
        say("x-echo", ws.response.headers.get("x-echo"))
        await ws.send("héllo")
        say("text", await ws.recv())
        await ws.send(b"\x00\xffbin")
        say("binary", repr(await ws.recv()))
        await ws.send(["frag", "men", "ted"])
        say("fragmented", await ws.recv())
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        say("pong", "yes")
        big = os.urandom(16 << 20)
        await ws.send(big)
        back = await ws.recv()
        say("16 MiB back intact", back == big)
        await ws.close(4321, "client done")
        say("closed", ws.close_code)


async def scope():
    async with connect(f"{BASE}/ws/scope?x=1", subprotocols=["a", "b"]) as ws:
        say("scope", await ws.recv())
        try:
            await ws.recv()
        except ConnectionClosed:
            pass
        say("close", f"{ws.close_code} {ws.close_reason}")


async def refused():
    for path in ("deny", "deny_response"):
        try:
            async with connect(f"{BASE}/ws/{path}"):
                say(path, "accepted?!")
        except InvalidStatus as e:
            say(path, f"{e.response.status_code} {e.response.body!r}")


async def server_close():
    async with connect(f"{BASE}/ws/server_close") as ws:
        say("message", await ws.recv())
        try:
            await ws.recv()
        except ConnectionClosed:
            pass
        say("close", f"{ws.close_code} {ws.close_reason}")


async def ends(path):
    async with connect(f"{BASE}/ws/{path}") as ws:
        try:
            while True:
                say("message", await ws.recv())
        except ConnectionClosed:
            pass
        say("close", ws.close_code)


async def too_big():
    async with connect(f"{BASE}/small/sizes", max_size=None) as ws:
        await ws.send(b"x" * 1000)
        say("1000 bytes", await ws.recv())
        await ws.send(b"x" * 2000)
        try:
            await ws.recv()
        except ConnectionClosed:
            pass
        say("close", f"{ws.close_code} {ws.close_reason}")


def small_buffers():
    """A socket whose kernel buffers hold little, so that what backs up
    shows in nginx and the app, not in the kernel."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    s.connect(("127.0.0.1", PORT))
    return s


async def slow_client():
    """Reads nothing for 1 s while the app floods; asks meanwhile how far
    the app got; then reads every message."""
    async with connect(f"{BASE}/ws/flood?128", max_size=None, max_queue=1, sock=small_buffers()) as ws:
        # websockets reads into its own buffer: stop its reading.
        ws.transport.pause_reading()
        await asyncio.sleep(1)
        async with connect(f"{BASE}/ws/progress") as probe:
            say("sent after 1 s", await probe.recv())
        ws.transport.resume_reading()
        n, intact = 0, True
        try:
            while True:
                data = await ws.recv()
                intact &= data == bytes([n % 256]) * 65536
                n += 1
        except ConnectionClosed:
            pass
        say("received", n)
        say("intact", intact)


async def slow_reader():
    """The app takes no message for 1 s: nginx stops reading, so the
    client's sends back up; then every message arrives."""
    async with connect(f"{BASE}/ws/slow_reader", write_limit=65536, sock=small_buffers()) as ws:
        start = time.monotonic()
        sent = 0
        payload = "y" * 65536
        try:
            async with asyncio.timeout(0.7):
                for _ in range(400):
                    await ws.send(payload)
                    sent += 1
        except TimeoutError:
            pass
        say("sent in 0.7 s", sent)
        async with asyncio.timeout(20):
            for _ in range(sent, 400):
                await ws.send(payload)
            await ws.send("last")
            say("answer", await ws.recv())
        say("took", round(time.monotonic() - start, 2))


def raw(path, frame):
    """Handshake by hand, send `frame`, return the server's close code and
    reason as it sent them."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(
        f"GET /ws/{path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    s.sendall(frame)
    data = rest
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    # The server's frames: find its close frame.
    i = 0
    while i + 2 <= len(data):
        opcode, n = data[i] & 0x0F, data[i + 1] & 0x7F
        at = i + 2
        if n == 126:
            n, at = struct.unpack("!H", data[at:at + 2])[0], at + 2
        elif n == 127:
            n, at = struct.unpack("!Q", data[at:at + 8])[0], at + 8
        payload = data[at:at + n]
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            return head.split(b"\r\n")[0].decode(), code, payload[2:].decode()
        i = at + n
    return head.split(b"\r\n")[0].decode(), None, ""


def masked(opcode, payload, fin=True):
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def violations():
    for name, frame in [
        ("unmasked", bytes([0x81, 0x02]) + b"hi"),
        ("bad utf-8", masked(1, b"\xff\xfe")),
        ("reserved bits", bytes([0xC1]) + masked(1, b"x")[1:]),
        ("continuation first", masked(0, b"x")),
    ]:
        status, code, reason = raw("echo", frame)
        say(name, f"{status} {code} {reason}")


async def idle(n):
    """Opens n WebSockets that stay idle; reports when all are open, holds
    them until stdin closes."""
    sockets = []
    for _ in range(n):
        sockets.append(await connect(f"{BASE}/ws/idle", ping_interval=None))
    say("open", len(sockets))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for ws in sockets:
        await ws.close()
    say("closed", len(sockets))
    say("close codes", sorted(int(ws.close_code) for ws in sockets))


def frames_of(s, timeout):
    """The server's frames from `s` over `timeout` s, or until it closes:
    (seconds since the call, opcode) each, and whether it closed."""
    start, data, seen = time.monotonic(), b"", []
    s.settimeout(0.05)
    while time.monotonic() - start < timeout:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            return seen, True
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F):
            n = data[1] & 0x7F  # the server's control frames are short
            seen.append((round(time.monotonic() - start, 1), data[0] & 0x0F))
            data = data[2 + n:]
    return seen, False


def keepalive():
    """Under asgi_websocket_ping_interval 1s: a quiet client is pinged, a
    pong keeps it, a client that answers nothing is closed."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(
        b"GET /keep/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    say("status", head.split(b"\r\n")[0].decode())
    seen, closed = frames_of(s, 1.6)
    say("first", f"{seen} closed={closed}")
    s.sendall(masked(0xA, b""))  # the pong
    seen, closed = frames_of(s, 1.6)
    say("after the pong", f"{seen} closed={closed}")
    seen, closed = frames_of(s, 3)  # no answer now
    say("unanswered", f"{seen} closed={closed}")
    s.close()


async def compliance():
    """t/031: a text and a binary message echoed, then a normal close."""
    async with connect(f"ws://127.0.0.1:{PORT}/c/ws") as ws:
        await ws.send("hi")
        say("text", await ws.recv())
        await ws.send(b"\x01")
        say("binary", repr(await ws.recv()))
    say("closed", ws.close_code)


CASES = {
    "compliance": compliance,
    "keepalive": keepalive,
    "echo": echo,
    "scope": scope,
    "refused": refused,
    "server_close": server_close,
    "returns": lambda: ends("returns"),
    "raises": lambda: ends("raises"),
    "bad_message": lambda: ends("bad_message"),
    "too_big": too_big,
    "slow_client": slow_client,
    "slow_reader": slow_reader,
    "idle": lambda: idle(int(sys.argv[3])),
}

if sys.argv[2] == "violations":
    violations()
elif sys.argv[2] == "keepalive":
    keepalive()
else:
    asyncio.run(CASES[sys.argv[2]]())
