"""Start-up once per execution environment, shutdown when Lambda sends SIGTERM.

Lambda reuses a process for many invocations and freezes it in between, so
start-up belongs to the first invocation (not to import, where a failure
would crash the whole environment, and not around each invocation, which
would reopen every pool each time). The ASGI lifespan runs as a task on a
loop this object owns; between invocations the loop does not run and the
task simply waits. Lambda sends SIGTERM only to functions with an extension
registered, and leaves the runtime about 300 ms before SIGKILL.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
import weakref
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

import anyio

from .._errors import LifespanFailed
from .._lifespans import AppLifespan
from .._types import ASGIApp

logger = logging.getLogger("bridge.lambda")

Hook = Callable[[dict[str, Any]], object]
"""A start-up or shutdown hook: called with the shared state dict; may be async."""
T = TypeVar("T")


class Lifecycle:
    """The loop, the lifespan task and the hooks of one handler."""

    def __init__(
        self,
        asgi_app: ASGIApp | None,
        name: str,
        on_startup: Hook | None,
        on_shutdown: Hook | None,
        shutdown_timeout: float,
    ) -> None:
        self.asgi_app = asgi_app
        self.name = name
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {}
        self.started = False
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_lifespan: asyncio.Event | None = None
        self._lifespan_done: asyncio.Future[None] | None = None
        self.stop_pending = False
        """A shutdown came during an invocation: ``after_invocation`` runs it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            # Its self-pipe is a socket pair: closed with the handler, not left to GC.
            weakref.finalize(self, _close_loop, self._loop)
        return self._loop

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def startup(self) -> None:
        """Run the lifespan startup and ``on_startup``; ``LifespanFailed`` if either fails."""
        if self.asgi_app is not None:
            failure = self.run(self._start_lifespan(self.asgi_app))
            if failure is not None:
                raise LifespanFailed(f"lifespan startup of {self.name} failed: {failure}")
        if self.on_startup is not None:
            try:
                self._call_hook(self.on_startup)
            except Exception as error:
                self.run(self._end_lifespan())
                raise LifespanFailed(f"on_startup of {self.name} failed: {error!r}") from error
        self.started = True
        self._listen_for_sigterm()

    def shutdown(self) -> None:
        """Run ``on_shutdown`` and the lifespan shutdown, once, within ``shutdown_timeout``."""
        if not self.started or self._stopped:
            return
        if self._loop is not None and self._loop.is_running():
            self.stop_pending = True
            return
        self._stopped = True
        try:
            if self.on_shutdown is not None:
                self._call_hook(self.on_shutdown)
        except Exception:
            logger.exception("on_shutdown of %s failed", self.name)
        finally:
            if self._lifespan_done is not None:
                self.run(self._end_lifespan())

    def after_invocation(self) -> None:
        if self.stop_pending:
            self.stop_pending = False
            self.shutdown()

    def _call_hook(self, hook: Hook) -> None:
        result = hook(self.state)
        if inspect.isawaitable(result):
            self.run(result)

    async def _start_lifespan(self, app: ASGIApp) -> str | None:
        ready: asyncio.Future[AppLifespan] = asyncio.get_running_loop().create_future()
        self._stop_lifespan = asyncio.Event()
        self._lifespan_done = asyncio.ensure_future(self._keep_lifespan(app, ready))
        lifespan = await ready
        if lifespan.failure is not None:
            await self._lifespan_done
            self._lifespan_done = None
            return lifespan.failure
        if not lifespan.started:
            logger.debug("%s has no lifespan; starting without one", self.name)
        return None

    async def _keep_lifespan(self, app: ASGIApp, ready: asyncio.Future[AppLifespan]) -> None:
        """Holds the lifespan's task group open across invocations."""
        assert self._stop_lifespan is not None
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        try:
            async with anyio.create_task_group() as group:
                lifespan = AppLifespan(app, self.name, scope)
                await lifespan.startup(group)
                ready.set_result(lifespan)
                if not lifespan.started:
                    return
                await self._stop_lifespan.wait()
                await lifespan.shutdown()
                if lifespan.failure is not None:
                    logger.error("lifespan shutdown of %s failed: %s", self.name, lifespan.failure)
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise

    async def _end_lifespan(self) -> None:
        if self._stop_lifespan is None or self._lifespan_done is None:
            return
        self._stop_lifespan.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._lifespan_done), self.shutdown_timeout)
        except asyncio.TimeoutError:
            logger.error(
                "lifespan shutdown of %s took longer than %.2f s; leaving it to Lambda's SIGKILL",
                self.name,
                self.shutdown_timeout,
            )
        finally:
            self._lifespan_done = None

    def _listen_for_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not on the main thread: shutdown only through handler.shutdown()")
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self.shutdown()
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                raise SystemExit(0)

        signal.signal(signal.SIGTERM, on_sigterm)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_running() and not loop.is_closed():
        loop.close()
