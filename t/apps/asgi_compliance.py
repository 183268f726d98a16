"""ASGI compliance (t/031-asgi-compliance.t): checks every scope the server
gives and every event receive() returns against asgiref's own typed
description of the spec (asgiref.typing), and gives what it found at
/found. The spec itself, where it allows more than asgiref's types say, is
followed: a websocket.receive event has "bytes" or "text" (or both, one of
them None)."""

import collections.abc
import types
import typing

from asgiref import typing as spec

SCOPES = {
    "http": spec.HTTPScope,
    "websocket": spec.WebSocketScope,
    "lifespan": spec.LifespanScope,
}
EVENTS = {
    "http.request": spec.HTTPRequestEvent,
    "http.disconnect": spec.HTTPDisconnectEvent,
    "websocket.connect": spec.WebSocketConnectEvent,
    "websocket.receive": spec.WebSocketReceiveEvent,
    "websocket.disconnect": spec.WebSocketDisconnectEvent,
    "lifespan.startup": spec.LifespanStartupEvent,
    "lifespan.shutdown": spec.LifespanShutdownEvent,
}

# What was checked ("http scope", "http.request event", ...) and the faults.
checked = set()
faults = []


def fits(value, hint):
    """Whether `value` is of the type `hint` (as far as asgiref's types go)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.NotRequired:
        return fits(value, args[0])
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if typing.is_typeddict(hint):
        return not problems(value, hint, "")
    if origin is tuple:
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(fits(v, a) for v, a in zip(value, args)))
    if origin is dict:
        return isinstance(value, dict) and all(
            fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
    if origin is collections.abc.Iterable:
        if isinstance(value, (str, bytes)):
            return False
        return all(fits(item, args[0]) for item in value)
    if hint is int:
        return type(value) is int
    return isinstance(value, hint)


def problems(value, typed, what):
    """The ways `value` breaks the TypedDict `typed`: keys missing, or of
    the wrong type."""
    if not isinstance(value, dict):
        return [f"{what} is a {type(value).__name__}, not a dict"]
    found = []
    hints = typing.get_type_hints(typed, include_extras=True)
    for key, hint in hints.items():
        if key not in value:
            if key in typed.__required_keys__:
                found.append(f"{what}: {key!r} is missing")
        elif not fits(value[key], hint):
            found.append(f"{what}: {key!r} is {value[key]!r:.60}, not {hint}")
    return found


def check_scope(scope):
    kind = scope.get("type")
    checked.add(f"{kind} scope")
    faults.extend(problems(scope, SCOPES[kind], f"{kind} scope"))
    if scope["asgi"].get("version") != "3.0":
        faults.append(f"{kind} scope: asgi.version is {scope['asgi'].get('version')!r}")


def check_event(event):
    kind = event.get("type")
    checked.add(f"{kind} event")
    typed = EVENTS.get(kind)
    if typed is None:
        faults.append(f"an event of an unknown type: {event!r:.80}")
        return
    if kind == "websocket.receive":
        # The spec: one or both keys, exactly one of them not None.
        given = [event.get("bytes"), event.get("text")]
        if sum(v is not None for v in given) != 1:
            faults.append(f"websocket.receive event: {event!r:.80}")
        event = {"bytes": None, "text": None, **event}
    faults.extend(problems(event, typed, f"{kind} event"))


def checking(receive):
    async def checked_receive():
        event = await receive()
        check_event(event)
        return event
    return checked_receive


async def app(scope, receive, send):
    check_scope(scope)
    receive = checking(receive)
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        event = await receive()
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "bytes": event.get("bytes"),
                        "text": event.get("text")})
    # HTTP: the body to its end, then the disconnect once answered.
    while True:
        event = await receive()
        if not event.get("more_body"):
            break
    if scope["path"].endswith("/found"):
        body = "checked: %s\nfaults: %d\n%s" % (
            ", ".join(sorted(checked)), len(faults), "".join(f + "\n" for f in faults))
    else:
        body = "ok\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})
    await receive()
