"""A FastAPI app served by nginx through asgi_pass (nginx-conf/fastapi.conf).

JSON, path and query parameters, a validated JSON body, a streamed
response, a file nginx sends itself, cookies, a redirect, a mounted
sub-application, state the lifespan handler sets up, and a WebSocket chat.
t/028-asgi-frameworks.t checks each HTTP route against Starlette's own
in-process TestClient.
"""

import asyncio
import hashlib
import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

PRIVATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "private")


class ChatRoom:
    """Who is in the chat. Each nginx worker has its own room: a chat that
    spans workers needs a broker between them (Redis pub/sub, say)."""

    def __init__(self):
        self.members: dict[WebSocket, str] = {}

    async def join(self, socket: WebSocket, name: str):
        await socket.accept()
        self.members[socket] = name
        await self.broadcast(f"* {name} joined")

    async def leave(self, socket: WebSocket):
        name = self.members.pop(socket, None)
        if name is not None:
            await self.broadcast(f"* {name} left")

    async def broadcast(self, text: str):
        # All at once: one slow member does not hold up the others.
        members = list(self.members)
        results = await asyncio.gather(*(m.send_text(text) for m in members),
                                       return_exceptions=True)
        for member, result in zip(members, results):
            if isinstance(result, Exception):
                self.members.pop(member, None)


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Runs once per nginx worker, at its start and at its exit. What it
    yields is each request's `request.state` (ASGI's lifespan state): the
    place for a database pool or an HTTP client; here a catalog and the
    chat room."""
    catalog = {1: {"id": 1, "name": "teapot", "price": 25.0},
               2: {"id": 2, "name": "kettle", "price": 40.0}}
    yield {"catalog": catalog, "room": ChatRoom()}


app = FastAPI(title="FastAPI on nginx", lifespan=lifespan)


@app.get("/", response_class=HTMLResponse)
async def index(request: Request):
    return (
        "<!doctype html><title>FastAPI on nginx</title>"
        "<h1>FastAPI, served by nginx itself</h1>"
        f'<p><a href="{request.url_for("list_items").path}">JSON</a> · '
        f'<a href="{request.url_for("stream").path}">a streamed response</a> · '
        f'<a href="{request.url_for("chat_page").path}">the chat</a></p>'
    )


@app.get("/api/items")
async def list_items(request: Request):
    return {"items": list(request.state.catalog.values()),
            "root_path": request.scope["root_path"]}


@app.get("/api/items/{item_id}")
async def get_item(request: Request, item_id: int,
                   fields: Annotated[list[str] | None, Query()] = None):
    item = request.state.catalog.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    return {k: v for k, v in item.items() if not fields or k in fields}


@app.get("/hello/{name}")
async def hello(name: str, greeting: str = "hello", times: Annotated[int, Query(ge=1, le=3)] = 1):
    return {"text": " ".join([f"{greeting}, {name}!"] * times)}


class NewItem(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    price: float = Field(gt=0)
    tags: list[str] = []


# A `def` endpoint: FastAPI runs it on a thread (anyio's pool), where
# blocking work belongs (a sync database driver, say); an `async def` one
# runs on the worker's event loop and must never block it.
@app.post("/api/items", status_code=201)
def create_item(item: NewItem, request: Request, response: Response):
    # An example: nothing is stored, the item is echoed with its price.
    response.headers["Location"] = request.url_for("get_item", item_id=3).path
    return {"id": 3, **item.model_dump(), "price_with_tax": round(item.price * 1.2, 2)}


@app.post("/upload")
async def upload(request: Request):
    """An upload read as it arrives: nginx serves /upload with
    `wsgi_request_buffering off`, so each piece reaches the app as the
    client sends it and a slow app holds the client back. The body is
    never held whole: its size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    async for piece in request.stream():
        digest.update(piece)
        size += len(piece)
    return {"size": size, "sha256": digest.hexdigest()}


@app.get("/stream")
async def stream():
    async def lines():
        for i in range(5):
            yield f"line {i}\n"
            await asyncio.sleep(0.05)
    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/report")
async def report():
    """A file: nginx sends it (ASGI's pathsend) without Python reading it.
    A Range request Starlette answers itself, from Python."""
    return FileResponse(os.path.join(PRIVATE, "report.txt"), media_type="text/plain",
                        filename="report.txt")


@app.get("/old")
async def old(request: Request):
    return RedirectResponse(request.url_for("index").path, status_code=302)


@app.get("/headers")
async def headers(response: Response,
                  x_tag: Annotated[list[str] | None, Header()] = None,
                  user_agent: Annotated[str | None, Header()] = None):
    response.headers["X-Tag-Count"] = str(len(x_tag or []))
    return {"x_tag": x_tag, "user_agent": user_agent}


@app.get("/cookie/set")
async def set_cookie(response: Response):
    response.set_cookie("flavour", "oatmeal", httponly=True)
    response.set_cookie("size", "large", path="/cookie", samesite="strict")
    return {"set": ["flavour", "size"]}


@app.get("/cookie/get")
async def get_cookie(request: Request):
    return {"flavour": request.cookies.get("flavour", "none")}


# The chat: a page, and the WebSocket it opens. A text message from one
# member goes to every member.
CHAT_PAGE = """<!doctype html><title>Chat</title>
<form id="f"><input id="msg" autocomplete="off"> <button>send</button></form>
<pre id="log"></pre>
<script>
const name = prompt("Your name?") || "anonymous";
const socket = new WebSocket("%s?name=" + encodeURIComponent(name));
socket.onmessage = (e) => { log.textContent += e.data + "\\n"; };
f.onsubmit = (e) => { e.preventDefault(); socket.send(msg.value); msg.value = ""; };
</script>"""


@app.get("/chat", response_class=HTMLResponse)
async def chat_page(request: Request):
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return CHAT_PAGE % request.url_for("chat_socket").replace(scheme=scheme)


@app.websocket("/chat/ws")
async def chat_socket(socket: WebSocket, name: Annotated[str, Query(max_length=40)]):
    room: ChatRoom = socket.state.room
    await room.join(socket, name)
    try:
        async for text in socket.iter_text():
            await room.broadcast(f"{name}: {text}")
    finally:
        await room.leave(socket)


# A sub-application mounted at /admin: it sees root_path "/admin" (after
# whatever prefix nginx mounts the whole app under) and builds its URLs
# from it.
admin = FastAPI(title="admin")


@admin.get("/")
def admin_home(request: Request):
    return {"root_path": request.scope["root_path"],
            "home": request.url_for("admin_home").path}


app.mount("/admin", admin)
