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
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn, Protocol

import anyio

from ._core.environ import EnvironBuilder
from ._core.response import ResponseState, plain_response, short_body_error
from ._errors import (
    AppProtocolError,
    BadRequest,
    BodyTimeout,
    BridgeError,
    ClientDisconnected,
    RequestBodyTooLarge,
    WorkAbandoned,
)
from ._executors import Executor, Job, request_context
from ._executors._loop import InContext, stepper
from ._forget import forget
from ._streams import InputStream
from ._types import Message, OptExcInfo, Receive, Scope, Send, WSGIApp

logger = logging.getLogger("bridge")

_CLIENT_GONE = (ClientDisconnected, WorkAbandoned)

# asyncio.timeout (Python 3.11+); 3.10 reads the body under an anyio cancel scope.
_asyncio_timeout: Callable[[float], Any] | None = getattr(asyncio, "timeout", None)
_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large"}
_NOTE = "bridge: the WSGI app failed on "


class Settings(Protocol):
    """What a request needs from the app object serving it (``WsgiToAsgi``).

    A protocol, so that this module never imports the app's: the app makes
    exchanges, an exchange only reads these.
    """

    app: WSGIApp
    executor: Executor
    environ_builder: EnvironBuilder
    max_body_size: int | None
    body_timeout: float | None
    errors_given: bool


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
        "label",
        "receive",
        "received",
        "refusal",
        "refused",
        "response_complete",
        "scope",
        "send",
        "watcher",
    )

    def __init__(self, bridge: Settings, scope: Scope, receive: Receive, send: Send) -> None:
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
        # The job and the environ (through ``wsgi.input``) hold this exchange's
        # bound methods: both cycles are cut when the app's work ends (``_respond``).
        self.job: Job[BaseException | None] | None = None

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
        self.label = label = f"{self.scope['method']} {self.scope['path']!r}"
        context = request_context(bridge.executor)
        self.job = job = bridge.executor.job(self._respond, self._sink, context, label)
        environ["wsgi.input"] = InputStream(self._pull)
        try:
            failure = await job.run()
        finally:
            watcher = self.watcher
            if watcher is not None:
                # Let go of it too: a cancelled task keeps its CancelledError,
                # whose traceback holds the watching frame, and so this exchange.
                self.watcher = None
                watcher.cancel()
        if failure is not None:
            try:
                raise failure
            finally:
                del failure  # this frame joins its traceback: no local may hold it
        if not self.response_complete and not self.client_gone:
            raise job.interrupted or BridgeError("the response ended before it was complete")
        if job.interrupted is not None:  # dealt with: its traceback holds the job in a cycle
            forget(job.interrupted)

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
        job = self.job
        if job is None:
            raise BridgeError(
                f"wsgi.input of {self.label} was read after its request ended; "
                "read the body within the WSGI call or its response iterable"
            )
        return job.await_(self._next_body())

    async def _next_body(self) -> bytes:
        timeout = self.bridge.body_timeout
        while not self.body_done:
            awaitable = self.receive() if self.watcher is None else self._from_inbox()
            if timeout is None:
                message = await awaitable
            else:
                message = await self._within(awaitable, timeout)
            if message["type"] == "http.request":
                body: bytes = message.get("body", b"")
                if not message.get("more_body", False):
                    self.body_done = True
                self.received += len(body)
                limit = self.bridge.max_body_size
                if limit is not None and self.received > limit:
                    logger.info(
                        "refused %s with 413: its body passed max_body_size=%d bytes",
                        self.label,
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
                try:
                    raise error
                finally:
                    del error  # this frame joins its traceback: no local may hold it
        return b""

    def _refuse(self, error: BridgeError, text: str) -> NoReturn:
        """Raise ``error`` in the app's read, and answer ``text`` in place of its response."""
        # A copy, never raised: the raised one's traceback holds this exchange.
        self.refused = type(error)(*error.args)
        self.refusal = text
        try:
            raise error
        finally:
            del error  # this frame joins its traceback: no local may hold it

    async def _within(self, awaitable: Awaitable[Message], timeout: float) -> Message:
        """``awaitable``, or ``BodyTimeout`` once nothing arrived for ``timeout`` s."""
        if _asyncio_timeout is not None and _in_asyncio_task():
            return await self._asyncio_within(awaitable, timeout)
        with anyio.move_on_after(timeout):
            return await awaitable
        self._give_up(timeout)

    async def _asyncio_within(self, awaitable: Awaitable[Message], timeout: float) -> Message:
        """Like ``_within``, with no timer at all when the server holds the message already.

        The one step taken by hand is what is clever here: most reads find their
        message at hand, and arming and dropping a deadline for each costs about
        5 µs a read on asyncio (a 10-byte upload through the greenlet executor:
        14 µs a request with this, 19 µs with ``asyncio.timeout`` around a plain
        ``await``; 27 against 59 µs for eight pieces). ``stepper`` makes that
        step work for any awaitable. Only a read that suspends gets a deadline:
        ``asyncio.timeout``, which cancels the task, nests with a cancel scope
        that the server's ``receive()`` may have opened in that first step, where
        a scope of ours entered after it would not.
        """
        iterator = stepper(awaitable)
        try:
            signal = iterator.send(None)
        except StopIteration as stop:
            message: Message = stop.value
            return message
        assert _asyncio_timeout is not None
        deadline = _asyncio_timeout(timeout)
        try:
            async with deadline:
                return await InContext.resume(None, iterator, signal)
        except TimeoutError:
            if not deadline.expired():
                raise  # the server's own
        self._give_up(timeout)

    def _give_up(self, timeout: float) -> NoReturn:
        of = "" if self.declared_length is None else f" of {self.declared_length}"
        logger.warning(
            "gave up on the request body of %s: nothing arrived for %s s after %d%s bytes "
            "(body_timeout); its read raises BodyTimeout and the client gets 408",
            self.label,
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
        job = self.job
        if job is not None:  # else the work has ended: nothing left to stop
            job.interrupt(error)

    def _start_watcher(self) -> None:
        if _in_asyncio_task():
            self.watcher = asyncio.get_running_loop().create_task(self._watch())
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
                forget(error)  # the job keeps it: its traceback must not keep the app's frames
                return None
            if not isinstance(error, Exception):
                raise
            return self._fail(job, state, error)
        finally:
            if not self.bridge.errors_given:  # ours: what the app left unflushed ends here
                self.environ["wsgi.errors"].flush()
            # Nothing here needs them any more: the environ the app may keep and
            # the job stop holding this exchange, so reference counting frees
            # the request (and what the app hung on the environ) when it ends.
            self.job = None
            del self.environ
        return None

    def _fail(
        self, job: Job[BaseException | None], state: ResponseState, error: Exception
    ) -> BaseException | None:
        """Answer what can still be answered; return the error the server must get, if any.

        An error raised to the server is logged by the server (a test client
        raises it), so bridge only names the request on it, as a note: one
        exception, one log record. Before the response began, the client gets
        a 500 first, and what bridge itself found wrong (``AppProtocolError``)
        is logged here instead of raised.
        """
        if state.complete:
            self._log_app_error(job.label, "after its response was complete", error)
            return None
        if self.refused is not None:  # logged when the body was refused; the refusal answers
            if state.started:
                return error
            self._put_500(job)
            return None
        if state.started:
            self._raise_app_error(job.label, "after its response began; aborted", error)
            return error
        if isinstance(error, AppProtocolError):  # bridge's own finding: logged as such
            self._log_app_error(job.label, "before its response began; answering 500", error)
            self._put_500(job)
            return None
        self._raise_app_error(job.label, "before its response began; answered 500", error)
        self._put_500(job)
        return error

    def _put_500(self, job: Job[BaseException | None]) -> None:
        try:
            job.put(plain_response(500, "Internal Server Error"))
        except BaseException as put_error:
            if put_error is not job.interrupted:
                raise

    def _raise_app_error(self, label: str, when: str, error: Exception) -> None:
        """Name the request on an error that goes on to the server, which logs it."""
        note = f"{_NOTE}{label} {when}"
        if sys.version_info >= (3, 11):
            notes = getattr(error, "__notes__", None)
            if notes:  # an exception object raised again: its notes must not pile up
                notes[:] = [n for n in notes if not (isinstance(n, str) and n.startswith(_NOTE))]
            error.add_note(note)  # the server's traceback names the request
        else:
            logger.info("%s: %r, raised on to the server", note, error)
        self._write_app_error(label, when, error)

    def _log_app_error(self, label: str, when: str, error: BaseException) -> None:
        logger.error("the WSGI app failed on %s %s", label, when, exc_info=error)
        self._write_app_error(label, when, error)

    def _write_app_error(self, label: str, when: str, error: BaseException) -> None:
        if self.bridge.errors_given:
            stream = self.environ["wsgi.errors"]
            stream.write(f"bridge: the WSGI app failed on {label} {when}\n")
            stream.write("".join(traceback.format_exception(error)))
            stream.flush()


def _in_asyncio_task() -> bool:
    """True in an asyncio task; false under trio (directly or through anyio)."""
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no asyncio loop runs in this thread
        return False


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
        try:
            raise error
        finally:
            del error  # this frame joins its traceback: no local may hold it


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
