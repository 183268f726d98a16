"""t/028's chat check: `chat_client.py BASE_WS_URL` joins the FastAPI
example's chat as alice and bob, each says something, and prints what each
saw (one `name: line | line` per client)."""

import asyncio
import sys

from websockets.asyncio.client import connect


async def main(base):
    async with connect(f"{base}?name=alice") as alice, connect(f"{base}?name=bob") as bob:
        seen = {"alice": [], "bob": []}

        async def read(name, socket, count):
            for _ in range(count):
                seen[name].append(await asyncio.wait_for(socket.recv(), 5))

        # alice sees bob join, then both messages; bob sees both messages.
        await asyncio.wait_for(alice.recv(), 5)  # her own join
        await asyncio.sleep(0.2)
        await alice.send("hello")
        await asyncio.sleep(0.2)
        await bob.send("hi alice")
        await asyncio.gather(read("alice", alice, 3), read("bob", bob, 3))
        for name, lines in seen.items():
            print(f"{name}: {' | '.join(lines)}")


asyncio.run(main(sys.argv[1]))
