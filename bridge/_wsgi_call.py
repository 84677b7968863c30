"""One request through ``to_wsgi``: a WSGI server thread driving an ASGI app on the loop.

Theory of operation. The ASGI app runs as a task on the bridge's loop thread.
Everything it needs from the server thread (a piece of ``wsgi.input``) and
everything it produces (the response start, body chunks, its end) crosses
as an event on one mailbox that the server thread (or gevent greenlet) waits on. The
server thread reads the body only when the app's ``receive()`` asks for it,
and hands body chunks to the server as it yields them. A few chunks may wait
in the queue; past that the app's ``send()`` waits for the server (backpressure).

A loop that does not begin the request within ``loop_wait_timeout`` seconds
(something blocks it) loses it: the server thread answers 503 and the app is
never called for it. Who wins, the loop starting the task or the server
thread giving up, is settled by one atomic ``list.pop()`` on a one-item
ticket (not a lock: under gevent a patched lock must not be shared with the
loop's OS thread).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import sys
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any, Protocol

from ._core.response import plain_response, plain_wsgi_response
from ._core.scope import wsgi_headers, wsgi_status
from ._errors import AppProtocolError, BridgeError, ClientDisconnected
from ._executors._loop_thread import LoopThread
from ._executors._waiting import Mailbox, new_mailbox
from ._forget import forget
from ._streams import InputStream
from ._types import ASGIApp, Environ, Message, Scope, StartResponse

logger = logging.getLogger("bridge")

_READ, _START, _BODY, _DONE, _ERROR = range(5)
_CHUNK = 65536
_IN_FLIGHT = 4  # body chunks the app may send ahead of the server


class Host(Protocol):
    """What a request needs from the app that serves it (``AsgiToWsgi``), and no more."""

    app: ASGIApp
    runner: LoopThread
    grace_period: float
    loop_wait_timeout: float | None

    def log_error(self, label: str, when: str, error: BaseException) -> None: ...


class WsgiCall:
    """One request: the app's task on the loop and the server thread that serves it."""

    def __init__(self, bridge: Host, environ: Environ, scope: Scope) -> None:
        self.bridge = bridge
        self.environ = environ
        self.scope = scope
        self.events: Mailbox[tuple[Any, ...]] = new_mailbox()
        self.loop = bridge.runner.loop
        self.task: asyncio.Task[None] | None = None
        self.label = f"{scope['method']} {scope['path']!r}"
        self.ticket = [True]  # taken once: by the loop beginning, or by the server giving up
        # Loop side.
        self.started = False
        self.complete = False
        self.gone: asyncio.Event | None = None
        self.pending_read: asyncio.Future[tuple[bytes, bool] | None] | None = None
        self.room: asyncio.Future[None] | None = None
        self.in_flight = 0
        # Server side.
        length = environ.get("CONTENT_LENGTH")
        self.remaining: int | None = int(length) if length and length.isdigit() else None
        self.terminated = bool(environ.get("wsgi.input_terminated"))
        self.body_read = False

    # --- The server thread.

    def respond(self, start_response: StartResponse) -> Iterable[bytes]:
        context = contextvars.copy_context()
        self.loop.call_soon_threadsafe(self._spawn, context)
        try:
            return self._until_start(start_response)
        except BaseException:
            self.close()  # no iterable will reach the server: release the app here
            raise

    def _until_start(self, start_response: StartResponse) -> Iterable[bytes]:
        wait = self.bridge.loop_wait_timeout
        while True:
            if wait is None:
                event = self.events.get()
            else:
                try:
                    event = self.events.get(timeout=wait)
                except queue.Empty:
                    if self._take_ticket():
                        return self._loop_busy(start_response, wait)
                    wait = None  # the app runs; from now on it takes the time it takes
                    continue
                wait = None
            kind = event[0]
            if kind == _READ:
                self._serve_read()
            elif kind == _START:
                start_response(event[1], event[2])
                return _Response(self, start_response, _declared_length(event[1], event[2]))
            elif kind == _ERROR:
                error = event[1]
                del event
                return self._fail_before_start(start_response, error)
            elif kind == _DONE:
                return self._fail_before_start(
                    start_response,
                    AppProtocolError("the ASGI app returned without sending a response"),
                )

    def _take_ticket(self) -> bool:
        """Take the request's one ticket; False if the other side took it first."""
        try:
            self.ticket.pop()
        except IndexError:
            return False
        return True

    def _loop_busy(self, start_response: StartResponse, wait: float) -> Iterable[bytes]:
        logger.error(
            "the bridge's event loop did not begin %s within %s s (loop_wait_timeout); "
            "answering 503. Something blocks the loop thread: look for blocking calls "
            "or long CPU work in async code",
            self.label,
            wait,
        )
        start, end = plain_response(503, "Service Unavailable: the event loop is blocked")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        start_response(f"503 {HTTPStatus(503).phrase}", headers)
        body: bytes = end["body"]
        return [body]

    def _fail_before_start(
        self, start_response: StartResponse, error: BaseException
    ) -> Iterable[bytes]:
        self.bridge.log_error(self.label, "before its response began; answering 500", error)
        forget(error)
        status, headers, body = plain_wsgi_response(500, "Internal Server Error")
        start_response(status, headers)
        return [body]

    def _serve_read(self) -> None:
        """Read the next piece of ``wsgi.input`` for the app and hand it to the loop."""
        stream = self.environ["wsgi.input"]
        if self.remaining is not None:
            size = min(self.remaining, _CHUNK)
            piece = stream.read(size) if size else b""
            if size and not piece:
                reply: tuple[bytes, bool] | None = None  # shorter than its Content-Length
            else:
                self.remaining -= len(piece)
                reply = (piece, self.remaining > 0)
        elif self.terminated:
            piece = stream.read(_CHUNK)
            reply = (piece, bool(piece))
        else:
            reply = (b"", False)
        self.loop.call_soon_threadsafe(self._deliver_read, reply)

    def next_chunk(self, start_response: StartResponse, sent_any: bool) -> tuple[bytes, bool]:
        """The next body chunk for the server and whether it is the last; serves reads meanwhile."""
        while True:
            event = self.events.get()
            kind = event[0]
            if kind == _READ:
                self._serve_read()
            elif kind == _BODY:
                self.loop.call_soon_threadsafe(self._consumed)
                chunk, more = event[1], event[2]
                if chunk or not more:
                    return chunk, not more
            elif kind == _ERROR:
                error = event[1]
                del event
                if sent_any:
                    self.bridge.log_error(self.label, "after its response began; aborting", error)
                    forget(error)  # logged whole above; the server needs only to abort
                    try:
                        raise error
                    finally:
                        del error  # this frame joins its traceback: no local may hold it
                self.bridge.log_error(self.label, "before its body began; answering 500", error)
                status, headers, body = plain_wsgi_response(500, "Internal Server Error")
                try:
                    start_response(status, headers, (type(error), error, error.__traceback__))
                finally:
                    forget(error)
                return body, True
            elif kind == _DONE:
                raise BridgeError(
                    f"the ASGI app for {self.label} returned before its response was complete"
                )

    def close(self) -> None:
        """The server is done with the response; an unfinished app hears ``http.disconnect``."""
        self.loop.call_soon_threadsafe(self._client_gone)

    # --- The loop side.

    def _spawn(self, context: contextvars.Context) -> None:
        if not self._take_ticket():
            return  # the server thread gave up waiting and answered 503
        self.gone = asyncio.Event()
        self.task = context.run(self.loop.create_task, self._run())

    async def _run(self) -> None:
        try:
            await self.bridge.app(self.scope, self._receive, self._send)
        except BaseException as error:
            assert self.gone is not None
            if not self.complete and not self.gone.is_set():
                self.events.put((_ERROR, error))  # the server thread reports it, then forgets it
                if not isinstance(error, Exception):
                    raise
                return
            if not isinstance(error, (ClientDisconnected, asyncio.CancelledError)):
                when = "after its response was complete" if self.complete else "after it ended"
                self.bridge.log_error(self.label, when, error)
            forget(error)
            if not isinstance(error, Exception):
                raise
        else:
            self.events.put((_DONE,))

    async def _receive(self) -> Message:
        assert self.gone is not None
        if self.gone.is_set():
            return {"type": "http.disconnect"}
        if self.body_read:
            await self.gone.wait()
            return {"type": "http.disconnect"}
        self.pending_read = self.loop.create_future()
        self.events.put((_READ,))
        reply = await self.pending_read
        if reply is None:
            return {"type": "http.disconnect"}
        piece, more = reply
        if not more:
            self.body_read = True
        return {"type": "http.request", "body": piece, "more_body": more}

    def _deliver_read(self, reply: tuple[bytes, bool] | None) -> None:
        future = self.pending_read
        if future is not None and not future.done():
            future.set_result(reply)

    async def _send(self, message: Message) -> None:
        assert self.gone is not None
        if self.gone.is_set():
            raise ClientDisconnected("the WSGI server closed the response (the client went away)")
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise AppProtocolError("the ASGI app sent http.response.start twice")
            status = wsgi_status(message["status"])
            headers = wsgi_headers(message.get("headers", ()))
            self.started = True
            self.events.put((_START, status, headers))
        elif kind == "http.response.body":
            if not self.started:
                raise AppProtocolError("the ASGI app sent a body before http.response.start")
            if self.complete:
                raise AppProtocolError("the ASGI app sent a body after its response was complete")
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if type(body) is not bytes:
                raise AppProtocolError(
                    f"the ASGI app sent a body of {type(body).__name__}, not bytes"
                )
            self.complete = not more
            self.in_flight += 1
            self.events.put((_BODY, body, more))
            if more and self.in_flight > _IN_FLIGHT:
                self.room = self.loop.create_future()
                try:
                    await self.room
                finally:
                    self.room = None
                if self.gone.is_set():
                    # Raised here, not stored in the future: a future that keeps an
                    # exception keeps its traceback's frames, and the app's with them.
                    raise ClientDisconnected("the WSGI server closed the response")
        else:
            raise AppProtocolError(f"the ASGI app sent {kind!r} on an HTTP request")

    def _consumed(self) -> None:
        self.in_flight -= 1
        if self.room is not None and not self.room.done() and self.in_flight <= _IN_FLIGHT:
            self.room.set_result(None)

    def _client_gone(self) -> None:
        if self.gone is None:
            return  # never begun (abandoned): there is no app to tell
        self.gone.set()
        self._deliver_read(None)
        self._drop_unread()
        if self.room is not None and not self.room.done():
            self.room.set_result(None)  # _send sees gone and raises ClientDisconnected
        task = self.task
        if task is not None and not task.done():
            timer = self.loop.call_later(self.bridge.grace_period, task.cancel)
            # A task that ends by itself need not be held until the timer fires.
            task.add_done_callback(lambda _: timer.cancel())

    def _drop_unread(self) -> None:
        """Log and let go of an error the server, gone, will never read (it holds app frames)."""
        while True:
            try:
                event = self.events.get(block=False)
            except queue.Empty:
                return
            if event[0] == _ERROR:
                error = event[1]
                if not isinstance(error, (ClientDisconnected, asyncio.CancelledError)):
                    self.bridge.log_error(self.label, "before the server closed it", error)
                forget(error)


class _Response:
    """The iterable the WSGI server gets: body chunks as the app sends them."""

    def __init__(self, call: WsgiCall, start_response: StartResponse, length: int | None) -> None:
        self.call = call
        self.start_response = start_response
        self.sent_any = False
        # ASGI apps leave dropping a HEAD body to their server; not every WSGI server does.
        self.head = call.environ["REQUEST_METHOD"] == "HEAD"
        self.length = length

    def __iter__(self) -> Iterator[bytes]:
        last = False
        sent = 0
        while not last:
            chunk, last = self.call.next_chunk(self.start_response, self.sent_any)
            if chunk:
                self.sent_any = True
                sent += len(chunk)
                if not self.head:
                    yield chunk
        if self.length is not None and sent < self.length and not self.head:
            # Ended here, the server would pass a short body off as whole and keep
            # the connection: raising makes it close instead (RELIABILITY 26).
            error = AppProtocolError(
                f"the ASGI app's body ended {self.length - sent} bytes short of its "
                "Content-Length; send the whole body, or leave Content-Length out"
            )
            self.call.bridge.log_error(self.call.label, "after its response began", error)
            try:
                raise error
            finally:
                del error  # this frame joins its traceback: no local may hold it

    def close(self) -> None:
        self.call.close()


def unframed_body(environ: Environ) -> str | None:
    """What to change in the server when a chunked body has no end the app could find.

    ``None`` when the body can be read: it has a ``CONTENT_LENGTH``, the server
    marks the input as ending where the body ends (``wsgi.input_terminated``),
    or the request says it has no chunked body. uWSGI and mod_wsgi (by default)
    pass a chunked body on with neither, and reading it would give the app an
    empty body as if nothing was sent. Under uWSGI's own HTTP parser the body
    can be read all the same: ``environ`` then gets a ``wsgi.input`` that reads
    it (``_read_through_uwsgi``), and this is ``None``.
    """
    if environ.get("CONTENT_LENGTH") or environ.get("wsgi.input_terminated"):
        return None
    if "chunked" not in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
        return None
    if "uwsgi.version" in environ:
        if _read_through_uwsgi(environ):
            return None
        return (
            "uWSGI 2.0 gives WSGI apps a chunked request body as empty input, and reads it "
            "for them only under its own HTTP parser: serve with --http-socket, run uWSGI "
            "2.1 or later with --wsgi-manage-chunked-input, or put a proxy that buffers "
            "request bodies in front of it (nginx does by default)"
        )
    if "mod_wsgi.version" in environ:
        return (
            "mod_wsgi passes chunked request bodies on only when told to: add "
            "'WSGIChunkedRequest On' to the Apache configuration (mod_wsgi-express: "
            "--chunked-request)"
        )
    return (
        "the WSGI server gives neither CONTENT_LENGTH nor wsgi.input_terminated for a "
        "chunked request body: turn on its chunked-input setting, or put a proxy that "
        "buffers request bodies in front of it"
    )


def _read_through_uwsgi(environ: Environ) -> bool:
    """Give ``environ`` a ``wsgi.input`` over ``uwsgi.chunked_read()``, if uWSGI can read the body.

    uWSGI 2.0 reads a chunked body chunk by chunk under its own HTTP parser
    (``--http-socket``) only. Reading the first chunk here tells whether it
    can; the stream then ends where the body ends.
    """
    read_chunk = getattr(sys.modules.get("uwsgi"), "chunked_read", None)
    if read_chunk is None:
        return False
    try:
        first = [read_chunk()]
    except OSError:  # not under uWSGI's HTTP parser: nothing was read
        return False

    def pull() -> bytes:
        chunk: bytes = first.pop() if first else read_chunk()
        return chunk

    environ["wsgi.input"] = InputStream(pull)
    environ["wsgi.input_terminated"] = True
    return True


def _declared_length(status: str, headers: list[tuple[str, str]]) -> int | None:
    """The Content-Length a response with a body promises; ``None`` if it promises none."""
    if status[:1] == "1" or status[:3] in ("204", "304"):
        return None
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)  # wsgi_headers let only one run of digits through
    return None
