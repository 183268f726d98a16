"""ngx_wsgi's ASGI side in Python: the worker's asyncio event loop, which
nginx's own event loop runs one step at a time (gateway.rs), each app's
lifespan, and the receive() and send() of each HTTP request, which check
the app's messages and hand them to nginx through the request's Channel
(exchange.rs). Nothing here blocks: waiting is a future that nginx's
events resolve."""

import asyncio
import asyncio.events
import base64
import collections
import hashlib
import http
import inspect
import select
import selectors
import sys
import threading

# The lifespan scope's versions: ASGI's own, and the lifespan spec's.
LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}

_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}


async def _run(exchange, app, scope, channel):
    """One request's task: the app's call, then its end told to the channel
    in the same step (a done callback would take another round)."""
    error = None
    try:
        await _call(app, scope, exchange.receive, exchange.send)
    except asyncio.CancelledError:
        # nginx ended the request: the client is gone.
        exchange.gateway.tasks.discard(exchange.task)
        raise
    except BaseException as e:
        error = e
        if not isinstance(e, Exception):
            exchange.gateway.tasks.discard(exchange.task)
            raise
    exchange.gateway.tasks.discard(exchange.task)
    if error is not None and exchange.raised_by_send(error):
        error = None
    channel.app_ended(error)


def _call(app, scope, receive, send):
    """The awaitable of one app call: ASGI 3 (`async def app(scope,
    receive, send)`), or ASGI 2 (`app(scope)` returns `instance(receive,
    send)`)."""
    if inspect.isclass(app):
        return app(scope)(receive, send)
    result = app(scope, receive, send)
    if not inspect.isawaitable(result):
        raise TypeError(
            f"the app is not an ASGI 3 application: calling it returned "
            f"{type(result).__name__}, not an awaitable"
        )
    return result


# Rounds of the loop one step may run while callbacks keep becoming ready;
# then nginx's other connections get their turn.
STEP_ITERATIONS = 4


class _CountingSelector(selectors.EpollSelector):
    """The loop's selector, noting whether a step found I/O events."""

    saw_events = False

    def select(self, timeout=None):
        ready = super().select(timeout)
        if ready:
            self.saw_events = True
        return ready


class Gateway:
    """The worker's one event loop and what runs on it."""

    def __init__(self):
        self.selector = _CountingSelector()
        self.loop = asyncio.SelectorEventLoop(self.selector)
        asyncio.set_event_loop(self.loop)
        # Whether the selector's descriptor still has events after a step
        # (nginx watches it edge-triggered).
        self.probe = select.poll()
        self.probe.register(self.selector.fileno(), select.POLLIN)
        # As run_forever() sets them, once: async generators an app leaves
        # are finalized on this loop.
        sys.set_asyncgen_hooks(
            firstiter=self.loop._asyncgen_firstiter_hook,
            finalizer=self.loop._asyncgen_finalizer_hook,
        )
        # Tasks of requests: asyncio keeps only weak references to them.
        self.tasks = set()
        self.lifespans = {}

    def fileno(self):
        """The selector's epoll descriptor: readable when the loop has I/O."""
        return self.loop._selector.fileno()

    def step(self):
        """Runs what is ready (the selector polled without waiting), for up
        to STEP_ITERATIONS rounds while callbacks become ready (a task's
        end, its done callbacks); then the seconds until the loop has work
        again: 0.0 now, None when only I/O (the descriptor) can bring it.

        What run_forever() does around _run_once(), less what a step does
        not need each time (the async generator hooks are set once)."""
        loop = self.loop
        selector = self.selector
        selector.saw_events = False
        loop._thread_id = threading.get_ident()
        asyncio.events._set_running_loop(loop)
        try:
            for _ in range(STEP_ITERATIONS):
                # _run_once() polls without waiting while stopping.
                loop._stopping = True
                loop._run_once()
                if not loop._ready:
                    break
        finally:
            loop._stopping = False
            loop._thread_id = None
            asyncio.events._set_running_loop(None)
        if loop._ready or (selector.saw_events and self.probe.poll(0)):
            return 0.0
        if loop._scheduled:
            return max(0.0, loop._scheduled[0].when() - loop.time())
        return None

    def http(self, channel, app, scope, index):
        """Starts request `channel` (its task runs at the next step)."""
        return self._start(HttpExchange(self, channel), channel, app, scope, index)

    def websocket(self, channel, app, scope, index, key):
        """Starts WebSocket request `channel`; `key` is its
        Sec-WebSocket-Key."""
        return self._start(WebSocketExchange(self, channel, key), channel, app, scope, index)

    def _start(self, exchange, channel, app, scope, index):
        lifespan = self.lifespans.get(index)
        if lifespan is not None:
            scope["state"] = lifespan.state.copy()
        # The task holds the channel for its end; the exchange lets go of
        # it when nginx is done with the request (see close()).
        task = self.loop.create_task(exchange.run(app, scope, channel))
        exchange.task = task
        self.tasks.add(task)
        return exchange

    def startup(self, index, app, timeout):
        """Runs app `index`'s lifespan startup to its end; (outcome, text):
        "complete", "unsupported" (the app raised before it answered: it
        does not do lifespan), "failed" (lifespan.startup.failed, or the
        timeout)."""
        lifespan = Lifespan(self.loop, app)
        task = self.loop.create_task(lifespan.run(), name="asgi lifespan")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        try:
            outcome = self.loop.run_until_complete(
                asyncio.wait_for(asyncio.shield(lifespan.started), timeout)
            )
        except asyncio.TimeoutError:
            outcome = ("failed", f"no answer to lifespan.startup within {timeout:g} s")
        if outcome[0] == "complete":
            self.lifespans[index] = lifespan
        return outcome

    def shutdown(self, timeout):
        """At the worker's exit: lifespan.shutdown to every app that started,
        then the tasks left are cancelled. [(index, outcome, text)]."""
        reports = []
        for index, lifespan in self.lifespans.items():
            lifespan.inbox.put_nowait({"type": "lifespan.shutdown"})
            try:
                outcome = self.loop.run_until_complete(
                    asyncio.wait_for(asyncio.shield(lifespan.stopped), timeout)
                )
            except asyncio.TimeoutError:
                outcome = ("failed", f"no answer to lifespan.shutdown within {timeout:g} s")
            reports.append((index, *outcome))
        left = [t for t in self.tasks if not t.done()]
        for task in left:
            task.cancel()
        if left:
            self.loop.run_until_complete(asyncio.wait(left, timeout=timeout))
        return reports


class Lifespan:
    """One app's lifespan scope: startup at the worker's start, shutdown at
    its exit."""

    def __init__(self, loop, app):
        self.app = app
        self.state = {}
        self.inbox = asyncio.Queue()
        self.inbox.put_nowait({"type": "lifespan.startup"})
        self.started = loop.create_future()
        self.stopped = loop.create_future()

    async def run(self):
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_ASGI), "state": self.state}
        try:
            await _call(self.app, scope, self.inbox.get, self.send)
        except BaseException as e:
            if not self.started.done():
                self.started.set_result(("unsupported", f"{type(e).__name__}: {e}"))
            if not self.stopped.done():
                self.stopped.set_result(("failed", f"the app raised {type(e).__name__}: {e}"))
            if not isinstance(e, Exception):
                raise
        finally:
            if not self.started.done():
                # As `if scope["type"] != "http": return` does: no lifespan.
                self.started.set_result(("unsupported", "it returned without answering lifespan.startup"))
            if not self.stopped.done():
                self.stopped.set_result(("failed", "the app returned before lifespan.shutdown"))

    async def send(self, message):
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "lifespan.startup.complete" and not self.started.done():
            self.started.set_result(("complete", ""))
        elif kind == "lifespan.startup.failed" and not self.started.done():
            self.started.set_result(("failed", str(message.get("message", ""))))
        elif kind == "lifespan.shutdown.complete" and not self.stopped.done():
            self.stopped.set_result(("complete", ""))
        elif kind == "lifespan.shutdown.failed" and not self.stopped.done():
            self.stopped.set_result(("failed", str(message.get("message", ""))))
        else:
            raise RuntimeError(f"unexpected lifespan message {message!r:.200}")


async def _client_took(exchange):
    """After a send that left nginx holding more than it may: on when the
    client took it (the request's write event)."""
    waiter = exchange.gateway.loop.create_future()
    exchange.channel.wait(waiter)
    await waiter


def _refuse(exchange, text, state):
    """A message nginx cannot send: the response ends (500, or cut once the
    head is out; a WebSocket closes with 1011), error_log says why, and the
    app gets the error from send()."""
    exchange.channel.refuse(text)
    exchange.state = state
    exchange.refused = RuntimeError(text)
    raise exchange.refused


class _Closed:
    """What an exchange calls once nginx is done with its request, in place
    of the channel: messages go nowhere, a WebSocket send raises."""

    __slots__ = ("was_complete",)

    def __init__(self, complete):
        self.was_complete = complete

    def read_body(self):
        return b"", False

    def wait_body(self, waiter):
        return "failed"

    def complete(self):
        return self.was_complete

    def body(self, chunk, more):
        return False

    def wait(self, waiter):
        waiter.set_result(None)

    def ws_send(self, data, text):
        raise OSError("the WebSocket is closed")

    def _nothing(self, *args):
        return None

    start = path = zerocopy = trailers = refuse = ws_accept = ws_close = ws_deny = ws_resume = _nothing


# Where an HTTP response is.
START, BODY, TRAILERS, DONE = range(4)


class HttpExchange:
    """receive() and send() of one HTTP request."""

    __slots__ = ("gateway", "channel", "task", "state", "trailers", "body_left",
                 "waiters", "closed", "refused")

    def __init__(self, gateway, channel):
        self.gateway = gateway
        self.channel = channel
        self.task = None
        self.state = START
        self.trailers = False
        self.body_left = True
        # receive() calls waiting for http.disconnect.
        self.waiters = []
        self.closed = False
        # The error send() raised for a bad message (logged already).
        self.refused = None

    async def run(self, app, scope, channel):
        await _run(self, app, scope, channel)

    async def receive(self):
        while self.body_left and not self.closed:
            piece = self.channel.read_body()
            if piece is not None:
                body, more = piece
                self.body_left = more
                return {"type": "http.request", "body": body, "more_body": more}
            # The body streams and nginx has nothing yet: on when the client
            # sends more (or the request ends).
            waiter = self.gateway.loop.create_future()
            state = self.channel.wait_body(waiter)
            if state == "failed":
                # The body cannot be read to its end: the request ends.
                self.body_left = False
                return {"type": "http.disconnect"}
            if state == "ended":
                break  # another receive() took the body's end
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
        if not self.closed:
            waiter = self.gateway.loop.create_future()
            self.waiters.append(waiter)
            await waiter
        return {"type": "http.disconnect"}

    def close(self, complete):
        """nginx is done with the request: the response is complete, or the
        client left (or timed out), and then the app's task is cancelled."""
        self.closed = True
        # The channel lives on the loop's thread only: an app may hand
        # receive and send (this exchange) to a thread of its own, which
        # may drop the exchange last.
        self.channel = _Closed(complete)
        woke = False
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
                woke = True
        self.waiters.clear()
        if not complete and self.task is not None and not self.task.done():
            self.task.cancel()
            # A task cancelled before its first step never runs _run()'s
            # bookkeeping; the loop holds it until the cancellation is done.
            self.gateway.tasks.discard(self.task)
            woke = True
        return woke

    def raised_by_send(self, error):
        """Whether `error` is what send() raised for a bad message (and
        logged)."""
        return error is self.refused

    def refuse(self, text):
        _refuse(self, text, DONE)

    async def send(self, message):
        if not isinstance(message, dict):
            self.refuse(f"send() takes a dict, not {type(message).__name__}")
        kind = message.get("type")
        state = self.state
        if state == START:
            if kind != "http.response.start":
                self.refuse(f"the first message must be 'http.response.start', not {kind!r}")
            status = message.get("status")
            if type(status) is not int:
                self.refuse(f"'status' of 'http.response.start' must be an int, not {status!r:.80}")
            headers = message.get("headers", ())
            self.trailers = bool(message.get("trailers", False))
            try:
                self.channel.start(f"{status} {_PHRASES.get(status, '')}", headers, self.trailers)
            except (TypeError, ValueError) as e:
                self.refuse(str(e))
            self.state = BODY
        elif state == BODY and kind == "http.response.body":
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytearray, memoryview)):
                    self.refuse(f"'body' of 'http.response.body' must be bytes, not {type(body).__name__}")
                body = bytes(body)
            more = bool(message.get("more_body", False))
            if not more:
                self.state = TRAILERS if self.trailers else DONE
            if self.channel.body(body, more):
                await _client_took(self)
        elif state == BODY and kind == "http.response.zerocopysend":
            fileno = getattr(message.get("file"), "fileno", None)
            if fileno is None:
                self.refuse("'file' of 'http.response.zerocopysend' must be a file object with fileno()")
            offset, count = message.get("offset"), message.get("count")
            for name, value in (("offset", offset), ("count", count)):
                if value is not None and (type(value) is not int or value < 0):
                    self.refuse(f"'{name}' of 'http.response.zerocopysend' must be an int >= 0, not {value!r:.80}")
            more = bool(message.get("more_body", False))
            if not more:
                self.state = TRAILERS if self.trailers else DONE
            try:
                must_wait = self.channel.zerocopy(fileno(), offset, count, more)
            except (OSError, ValueError) as e:
                self.refuse(f"http.response.zerocopysend: {e}")
            if must_wait:
                await _client_took(self)
        elif state == BODY and kind == "http.response.pathsend":
            path = message.get("path")
            if not isinstance(path, str):
                self.refuse(f"'path' of 'http.response.pathsend' must be a str, not {type(path).__name__}")
            self.state = DONE
            try:
                self.channel.path(path)
            except OSError as e:
                self.refuse(f"http.response.pathsend: {e}")
        elif state == TRAILERS and kind == "http.response.trailers":
            more = bool(message.get("more_trailers", False))
            try:
                self.channel.trailers(message.get("headers", ()), more)
            except (TypeError, ValueError) as e:
                self.refuse(str(e))
            if not more:
                self.state = DONE
        elif state == DONE:
            if self.refused is None and self.channel.complete():
                raise RuntimeError(f"{kind!r} sent after the response was complete")
        else:
            expected = "'http.response.body'" if state == BODY else "'http.response.trailers'"
            self.refuse(f"unexpected {kind!r} message: {expected} was expected")



# RFC 6455's key for Sec-WebSocket-Accept.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Messages (and their bytes) the app has not taken yet beyond which nginx
# stops reading the client, and below which it reads again.
_WS_INBOX_HIGH, _WS_INBOX_LOW = 64, 16
_WS_INBOX_HIGH_BYTES, _WS_INBOX_LOW_BYTES = 1 << 20, 256 << 10
# Where a WebSocket is.
CONNECTING, OPEN, CLOSED, DENYING = range(4)


def _size(message):
    """The bytes a received message holds."""
    data = message.get("bytes") or message.get("text") or b""
    return len(data)


class WebSocketExchange:
    """receive() and send() of one WebSocket: the handshake, messages both
    ways, the close; or, refused, an HTTP response."""

    __slots__ = ("gateway", "channel", "task", "key", "state", "inbox", "waiter",
                 "paused", "refused", "http", "queued", "disconnected", "close_code")

    def __init__(self, gateway, channel, key):
        self.gateway = gateway
        self.channel = channel
        self.task = None
        self.key = key
        self.state = CONNECTING
        self.inbox = collections.deque([{"type": "websocket.connect"}])
        # The bytes of the messages in the inbox.
        self.queued = 0
        # receive() has a websocket.disconnect to give; the code the app
        # closed with, for the one it gets after its own close.
        self.disconnected = False
        self.close_code = 1006
        self.waiter = None
        # nginx stopped reading the client: too many messages not taken.
        self.paused = False
        self.refused = None
        # The denial response, as an HTTP exchange sends it.
        self.http = None

    async def run(self, app, scope, channel):
        await _run(self, app, scope, channel)

    async def receive(self):
        while not self.inbox:
            self.waiter = self.gateway.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        message = self.inbox.popleft()
        self.queued -= _size(message)
        if self.paused and len(self.inbox) <= _WS_INBOX_LOW and self.queued <= _WS_INBOX_LOW_BYTES:
            self.paused = False
            self.channel.ws_resume()
        return message

    def deliver(self, message):
        """A message from the client (or the disconnect); False once the
        app has enough waiting, and nginx stops reading."""
        self.inbox.append(message)
        self.queued += _size(message)
        if message["type"] == "websocket.disconnect":
            self.state = CLOSED
            self.disconnected = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if len(self.inbox) >= _WS_INBOX_HIGH or self.queued >= _WS_INBOX_HIGH_BYTES:
            self.paused = True
        return not self.paused

    def close(self, complete):
        """nginx is done with the request: the app hears of it (1006 when
        the connection simply went)."""
        woke = False
        if not self.disconnected:
            self.deliver({"type": "websocket.disconnect", "code": self.close_code, "reason": ""})
            woke = True
        self.state = CLOSED
        self.channel = _Closed(complete)
        if self.http is not None:
            woke |= self.http.close(complete)
        return woke

    def raised_by_send(self, error):
        return error is self.refused or (self.http is not None and self.http.raised_by_send(error))

    def refuse(self, text):
        _refuse(self, text, CLOSED)

    async def send(self, message):
        if not isinstance(message, dict):
            self.refuse(f"send() takes a dict, not {type(message).__name__}")
        kind = message.get("type")
        state = self.state
        if state == CONNECTING:
            if kind == "websocket.accept":
                subprotocol = message.get("subprotocol")
                if subprotocol is not None and not isinstance(subprotocol, str):
                    self.refuse(f"'subprotocol' of 'websocket.accept' must be a str or None, not {type(subprotocol).__name__}")
                accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest())
                try:
                    self.channel.ws_accept(accept, subprotocol, message.get("headers", ()))
                except (TypeError, ValueError) as e:
                    self.refuse(str(e))
                self.state = OPEN
            elif kind == "websocket.close":
                # Refused before the handshake: 403.
                self.state = CLOSED
                self.channel.ws_deny()
            elif kind == "websocket.http.response.start":
                self.state = DENYING
                self.http = HttpExchange(self.gateway, self.channel)
                await self.http.send(dict(message, type="http.response.start"))
            else:
                self.refuse(f"the first message must be 'websocket.accept', 'websocket.close' or 'websocket.http.response.start', not {kind!r}")
        elif state == OPEN and kind == "websocket.send":
            data, text = message.get("bytes"), message.get("text")
            if (data is None) == (text is None):
                self.refuse("'websocket.send' must have one of 'bytes' and 'text'")
            if text is not None:
                if not isinstance(text, str):
                    self.refuse(f"'text' of 'websocket.send' must be a str, not {type(text).__name__}")
                wait = self.channel.ws_send(text.encode(), True)
            else:
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    self.refuse(f"'bytes' of 'websocket.send' must be bytes, not {type(data).__name__}")
                wait = self.channel.ws_send(bytes(data), False)
            if wait:
                await _client_took(self)
        elif state == OPEN and kind == "websocket.close":
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            if type(code) is not int or not isinstance(reason, str):
                self.refuse(f"'websocket.close' takes an int 'code' and a str 'reason', not {code!r:.40} and {reason!r:.40}")
            self.state = CLOSED
            self.close_code = code
            self.channel.ws_close(code, reason)
        elif state == DENYING and kind == "websocket.http.response.body":
            await self.http.send(dict(message, type="http.response.body"))
        elif state == CLOSED:
            if self.refused is None:
                raise OSError(f"{kind!r} sent on a closed WebSocket")
        else:
            self.refuse(f"unexpected {kind!r} message on a WebSocket that is {('connecting', 'open', 'closed', 'sending its denial response')[state]}")
