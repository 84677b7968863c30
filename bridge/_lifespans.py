"""Driving an ASGI app's lifespan from the bridge: for ``to_wsgi``, and for ``fallback``'s apps.

``AppLifespan`` runs one app's lifespan as a task and tells its outcome.
``run_lifespans`` answers one server lifespan for several apps. Startup goes to the apps one by one,
in order; the first failure stops there, shuts down the apps already started
(in reverse) and fails the server's startup, naming the app. Shutdown goes to
the started apps in reverse order. Only a ``lifespan.startup.failed`` message
(which Starlette and FastAPI send before they re-raise) is a failed startup: an
app that raises on the lifespan scope without sending it has no lifespan (the
ASGI spec's rule, and uvicorn's) and is served without one. A message of
another kind sent on the lifespan scope raises from ``send()``, as it does
under uvicorn and hypercorn, so that an HTTP-only app ends its lifespan call
instead of waiting in it.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskGroup

from ._errors import AppProtocolError, LifespanFailed
from ._types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("bridge")


class AppLifespan:
    """One app's lifespan task: start it, learn how startup went, ask for shutdown.

    After ``startup``: ``started`` if the app completed it, ``failure`` (the
    reason) if it failed; neither when the app has no lifespan.
    """

    def __init__(self, app: ASGIApp, name: str, scope: Scope) -> None:
        self.app = app
        self.name = name
        self.scope = scope
        self.started = False
        self.failure: str | None = None
        self._answered = anyio.Event()
        self._shutdown_asked = anyio.Event()
        self._finished = anyio.Event()
        self._asked = 0

    async def startup(self, group: TaskGroup) -> None:
        group.start_soon(self._run, name=f"lifespan of {self.name}")
        await self._answered.wait()

    async def shutdown(self) -> None:
        self._shutdown_asked.set()
        await self._finished.wait()

    async def _run(self) -> None:
        try:
            await self.app(dict(self.scope), self._receive, self._send)
        except Exception as error:
            if not self._answered.is_set():
                # Raised without lifespan.startup.failed: no lifespan (the ASGI rule).
                logger.info(
                    "%s raised on the lifespan scope without sending lifespan.startup.failed "
                    "(%s: %s); serving it without lifespan",
                    self.name,
                    type(error).__name__,
                    error,
                )
            elif self.started:
                self.failure = f"{type(error).__name__}: {error}"
                logger.error("the lifespan of %s failed", self.name, exc_info=error)
        finally:
            self._answered.set()
            self._finished.set()

    async def _receive(self) -> Message:
        self._asked += 1
        if self._asked == 1:
            return {"type": "lifespan.startup"}
        await self._shutdown_asked.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.started = True
            self._answered.set()
        elif kind == "lifespan.startup.failed":
            self.failure = message.get("message") or "lifespan.startup.failed"
            self._answered.set()
        elif kind == "lifespan.shutdown.failed":
            self.failure = message.get("message") or "lifespan.shutdown.failed"
            logger.error("lifespan shutdown of %s failed: %s", self.name, self.failure)
        elif kind != "lifespan.shutdown.complete":
            raise AppProtocolError(
                f"the ASGI app sent {kind!r} on the lifespan scope; send only lifespan.* "
                "messages there, or raise on a scope type the app does not handle"
            )


async def run_lifespans(
    apps: list[tuple[str, ASGIApp]], scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer the server's lifespan for all ``apps`` at once."""
    await receive()  # lifespan.startup
    failed: str | None = None
    async with anyio.create_task_group() as group:
        started: list[AppLifespan] = []
        for name, app in apps:
            lifespan = AppLifespan(app, name, scope)
            await lifespan.startup(group)
            if lifespan.failure is not None:
                logger.error("lifespan startup of %s failed:\n%s", name, lifespan.failure)
                await _shut_down(started)
                failed = f"lifespan startup of {name} failed: {_last_line(lifespan.failure)}"
                await send({"type": "lifespan.startup.failed", "message": failed})
                break
            if lifespan.started:
                started.append(lifespan)
        else:
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            failures = await _shut_down(started)
            if failures:
                await send({"type": "lifespan.shutdown.failed", "message": "; ".join(failures)})
            else:
                await send({"type": "lifespan.shutdown.complete"})
    if failed is not None:
        # Raised after the message, as Starlette does: servers stop quietly once
        # told, and test clients report it.
        raise LifespanFailed(failed)


def _last_line(text: str) -> str:
    """The gist of a failure message, which may be a whole traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


async def _shut_down(started: list[AppLifespan]) -> list[str]:
    failures: list[str] = []
    for lifespan in reversed(started):
        await lifespan.shutdown()
        if lifespan.failure is not None:
            failures.append(f"lifespan shutdown of {lifespan.name} failed: {lifespan.failure}")
    return failures
