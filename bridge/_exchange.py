"""One HTTP request through ``to_asgi``, from the scope to the last message.

The core builds the environ; the executor runs the app, its iteration and
``close()`` in one worker; every ASGI message the core emits reaches
``send()`` through the job's bounded channel. The request body moves only
when the app reads it. Once the response streams, a watcher listens on
``receive()`` for the client leaving, so an endless response stops at its
next chunk and its worker is free again.

Refusals. A body over ``max_body_size`` (413) or one that stops arriving for
``body_timeout`` seconds (408) makes the app's read raise; from then on every
read raises again, and whatever the app answers is replaced by the refusal,
or aborted if its response already began.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from ._core.response import ResponseState, plain_response, short_body_error
from ._errors import (
    BadRequest,
    BodyTimeout,
    BridgeError,
    ClientDisconnected,
    RequestBodyTooLarge,
    WorkAbandoned,
)
from ._executors import Job, request_context
from ._executors._loop import InContext
from ._streams import InputStream
from ._types import Message, OptExcInfo, Receive, Scope, Send

if TYPE_CHECKING:
    from ._to_asgi import WsgiToAsgi

logger = logging.getLogger("bridge")

_CLIENT_GONE = (ClientDisconnected, WorkAbandoned)
_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large"}


class Exchange:
    """One HTTP request and its response, from the scope to the last message."""

    __slots__ = (
        "body_done",
        "bridge",
        "client_gone",
        "declared_length",
        "environ",
        "inbox",
        "inbox_changed",
        "job",
        "receive",
        "received",
        "refusal",
        "refused",
        "response_complete",
        "scope",
        "send",
        "watcher",
    )

    def __init__(self, bridge: WsgiToAsgi, scope: Scope, receive: Receive, send: Send) -> None:
        self.bridge = bridge
        self.scope = scope
        self.receive = receive
        self.send = send
        self.body_done = False
        self.client_gone = False
        self.refused: BridgeError | None = None  # why the body was refused, once it was
        self.refusal = ""  # the text the client gets instead of the app's answer
        self.response_complete = False
        self.received = 0
        self.declared_length: int | None = None
        self.watcher: Any = None
        self.inbox: deque[Message] = deque()
        self.inbox_changed: anyio.Event | None = None

    async def run(self) -> None:
        bridge = self.bridge
        try:
            self.environ = environ = bridge.environ_builder.build(self.scope)
        except BadRequest as error:
            logger.info("refused a request with %d: %s", error.status_hint, error)
            reason = _REASONS.get(error.status_hint, "Bad Request")
            await self._answer(error.status_hint, f"{reason}: {error}")
            return
        declared = environ.get("CONTENT_LENGTH")
        if declared is not None and declared.isdigit():
            self.declared_length = int(declared)
            limit = bridge.max_body_size
            if limit is not None and self.declared_length > limit:
                await self._answer(413, f"Request body larger than {limit} bytes")
                return
        label = f"{self.scope['method']} {self.scope['path']!r}"
        context = request_context(bridge.executor)
        self.job = job = bridge.executor.job(self._respond, self._sink, context, label)
        environ["wsgi.input"] = InputStream(self._pull)
        try:
            failure = await job.run()
        finally:
            if self.watcher is not None:
                self.watcher.cancel()
        if failure is not None:
            raise failure
        if not self.response_complete and not self.client_gone:
            raise job.interrupted or BridgeError("the response ended before it was complete")

    async def _answer(self, status: int, text: str, *, close: bool = False) -> None:
        messages = plain_response(status, text)
        if close and self.scope.get("http_version", "1.1") in ("1.0", "1.1"):
            # RFC 9110 15.5.9: after a 408 the connection is not worth keeping;
            # HTTP/2 and 3 have no such header (their servers reset the stream).
            messages[0]["headers"].append((b"connection", b"close"))
        for message in messages:
            await self.send(message)
        self.response_complete = True

    # --- The loop side: the job's sink, the body, the disconnect watcher.

    async def _sink(self, messages: list[Message]) -> None:
        refused = self.refused
        if refused is not None and messages[0]["type"] == "http.response.start":
            status = refused.status_hint
            await self._answer(status, self.refusal, close=isinstance(refused, BodyTimeout))
            raise type(refused)(f"the response was replaced by {status}")
        send = self.send
        try:
            for message in messages:
                await send(message)
        except Exception as error:
            self.client_gone = True
            raise ClientDisconnected(f"sending the response failed: {error!r}") from error
        if not message["more_body"]:
            self.response_complete = True
        elif self.watcher is None:
            self._start_watcher()

    def _pull(self) -> bytes:
        refused = self.refused
        if refused is not None:
            raise type(refused)(*refused.args)
        return self.job.await_(self._next_body())

    async def _next_body(self) -> bytes:
        timeout = self.bridge.body_timeout
        while not self.body_done:
            awaitable = self.receive() if self.watcher is None else self._from_inbox()
            if timeout is None:
                message = await awaitable
            elif asyncio._get_running_loop() is None:
                message = await self._trio_within(awaitable, timeout)
            else:
                # One step right here: a message the server already holds costs no timer.
                iterator = awaitable.__await__()
                try:
                    signal = iterator.send(None)
                except StopIteration as stop:
                    message = stop.value
                else:
                    message = await self._asyncio_within(iterator, signal, timeout)
            if message["type"] == "http.request":
                body: bytes = message.get("body", b"")
                if not message.get("more_body", False):
                    self.body_done = True
                self.received += len(body)
                limit = self.bridge.max_body_size
                if limit is not None and self.received > limit:
                    logger.info(
                        "refused %s with 413: its body passed max_body_size=%d bytes",
                        self.job.label,
                        limit,
                    )
                    self._refuse(
                        RequestBodyTooLarge(f"the request body is larger than {limit} bytes"),
                        f"Request body larger than {limit} bytes",
                    )
                if body:
                    return body
            elif message["type"] == "http.disconnect":
                of = "" if self.declared_length is None else f" of {self.declared_length}"
                error = ClientDisconnected(
                    f"the client disconnected after sending {self.received}{of} bytes "
                    "of the request body"
                )
                self._lose_client(error)
                raise error
        return b""

    def _refuse(self, error: BridgeError, text: str) -> NoReturn:
        """Raise ``error`` in the app's read, and answer ``text`` in place of its response."""
        self.refused = error
        self.refusal = text
        raise error

    async def _trio_within(self, awaitable: Awaitable[Message], timeout: float) -> Message:
        """``awaitable``, or ``BodyTimeout`` after ``timeout`` s (trio: a plain cancel scope)."""
        with anyio.move_on_after(timeout):
            return await awaitable
        self._give_up(timeout)

    async def _asyncio_within(
        self, iterator: Generator[Any, None, Message], signal: Any, timeout: float
    ) -> Message:
        """Finish a receive whose first step suspended; ``BodyTimeout`` after ``timeout`` s.

        The deadline cancels this task as ``asyncio.timeout`` does, not through a
        cancel scope: one entered after that first step would not nest with a
        scope the server's ``receive()`` opened in it.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # not run as a task: nothing to cancel, so no deadline
            return await InContext.resume(None, iterator, signal)
        before = 0
        if sys.version_info >= (3, 11):
            before = task.cancelling()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_later(timeout, expire)
        try:
            return await InContext.resume(None, iterator, signal)
        except asyncio.CancelledError:
            # Ours only if the deadline fired and nobody else cancelled the task too.
            if not expired or (sys.version_info >= (3, 11) and task.uncancel() > before):
                raise
        finally:
            timer.cancel()
        self._give_up(timeout)

    def _give_up(self, timeout: float) -> NoReturn:
        of = "" if self.declared_length is None else f" of {self.declared_length}"
        logger.warning(
            "gave up on the request body of %s: nothing arrived for %s s after %d%s bytes "
            "(body_timeout); its read raises BodyTimeout and the client gets 408",
            self.job.label,
            timeout,
            self.received,
            of,
        )
        self._refuse(
            BodyTimeout(
                f"no request body arrived for {timeout} s (after {self.received}{of} bytes); "
                "pass a larger body_timeout to to_asgi() if clients are this slow"
            ),
            f"Request Timeout: no request body arrived for {timeout} s",
        )

    async def _from_inbox(self) -> Message:
        """The next message the watcher holds for the body (it owns ``receive()`` now)."""
        while not self.inbox:
            self.inbox_changed = anyio.Event()
            await self.inbox_changed.wait()
        message = self.inbox.popleft()
        self._signal_inbox()
        return message

    def _signal_inbox(self) -> None:
        if self.inbox_changed is not None:
            self.inbox_changed.set()

    def _lose_client(self, error: ClientDisconnected) -> None:
        self.client_gone = True
        self.job.interrupt(error)

    def _start_watcher(self) -> None:
        loop = asyncio._get_running_loop()
        if loop is not None:
            self.watcher = loop.create_task(self._watch())
        else:
            self.watcher = _TrioWatcher(self._watch)

    async def _watch(self) -> None:
        """Listen for the client leaving while the response streams."""
        try:
            await self._watch_receive()
        except Exception as error:
            self._lose_client(ClientDisconnected(f"receive() failed: {error!r}"))

    async def _watch_receive(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self._lose_client(ClientDisconnected("the client disconnected during the response"))
                self.inbox.append(message)
                self._signal_inbox()
                return
            if message["type"] == "http.request" and not self.body_done:
                # The app may still read the body: hold one message for it, and
                # receive more only once it took that one (after the last, none come).
                self.inbox.append(message)
                self._signal_inbox()
                while self.inbox and message.get("more_body", False):
                    self.inbox_changed = anyio.Event()
                    await self.inbox_changed.wait()

    # --- The sync side: runs in the worker, from the app call to close().

    def _respond(self, job: Job[BaseException | None]) -> BaseException | None:
        """Run the app; return an error that must abort the response, if any."""
        state = ResponseState(head=self.environ["REQUEST_METHOD"] == "HEAD")
        put = job.put

        def write(data: bytes) -> None:
            messages = state.body(data)
            if messages:
                put(messages)

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], None]:
            state.start_response(status, headers, exc_info)
            return write

        try:
            iterable = self.bridge.app(self.environ, start_response)
            _stream(iterable, state, put)
        except BaseException as error:
            if error is job.interrupted or isinstance(error, _CLIENT_GONE):
                logger.debug("stopped %s: %s", job.label, error)
                return None
            if not isinstance(error, Exception):
                raise
            return self._fail(job, state, error)
        return None

    def _fail(
        self, job: Job[BaseException | None], state: ResponseState, error: Exception
    ) -> BaseException | None:
        if state.complete:
            self._log_app_error(job.label, "after its response was complete", error)
            return None
        refused = self.refused is not None  # logged when the body was refused
        if state.started:
            if not refused:
                self._log_app_error(job.label, "after its response began; aborting it", error)
            return error
        if not refused:
            self._log_app_error(job.label, "before its response began; answering 500", error)
        try:
            job.put(plain_response(500, "Internal Server Error"))
        except BaseException as put_error:
            if put_error is not job.interrupted:
                raise
        return None

    def _log_app_error(self, label: str, when: str, error: BaseException) -> None:
        logger.error("the WSGI app failed on %s %s", label, when, exc_info=error)
        if self.bridge.errors_given:
            stream = self.environ["wsgi.errors"]
            stream.write(f"bridge: the WSGI app failed on {label} {when}\n")
            stream.write("".join(traceback.format_exception(error)))
            stream.flush()


def _stream(
    iterable: Iterable[bytes], state: ResponseState, put: Callable[[list[Message]], None]
) -> None:
    """Send every chunk of ``iterable``, then close it, keeping the first error.

    The messages of one chunk (the start message with the first) cross as one item.
    """
    error: BaseException | None = None
    try:
        if type(iterable) is list or type(iterable) is tuple:
            last = len(iterable) - 1
            for index, chunk in enumerate(iterable):
                messages = state.body(chunk, index == last)
                if messages:
                    put(messages)
                if state.complete:
                    break
        else:
            for chunk in iterable:
                messages = state.body(chunk)
                if messages:
                    put(messages)
                if state.complete:
                    break
        if not state.complete:
            put(state.finish())
    except BaseException as raised:
        error = raised
    close = getattr(iterable, "close", None)
    if close is not None:
        try:
            close()
        except Exception as close_error:
            if error is None:
                error = close_error
            else:
                logger.error("close() of the WSGI response also failed", exc_info=close_error)
    if error is None and state.short:
        error = short_body_error(state)
    if error is not None:
        raise error


class _TrioWatcher:
    """A watcher task for loops without asyncio's ``create_task`` (trio)."""

    def __init__(self, watch: Callable[[], Awaitable[None]]) -> None:
        import trio

        self._scope = trio.CancelScope()

        async def guarded() -> None:
            with self._scope:
                await watch()

        trio.lowlevel.spawn_system_task(guarded)

    def cancel(self) -> None:
        self._scope.cancel()
