"""``to_wsgi``: an ASGI app served by a WSGI server.

``AsgiToWsgi`` is the long-lived part: the loop thread every request of the
process runs on (one for all ``to_wsgi`` apps, started on first use and
again after a fork), and lifespan. Startup runs before the first request is
answered; a failed startup makes every request a 500 with the cause logged.
Shutdown runs on ``close()`` and at interpreter exit. No signal handlers:
signals belong to the server. Each request is a ``WsgiCall``.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import sys
import threading
from collections.abc import Iterable
from typing import Any

import anyio

from ._core.response import plain_wsgi_response
from ._core.scope import scope_from_environ
from ._errors import BadRequest, ConfigurationError
from ._executors._loop_thread import LoopThread
from ._executors._waiting import Mailbox, new_mailbox
from ._lifespans import AppLifespan
from ._types import ASGIApp, Environ, StartResponse
from ._wsgi_call import WsgiCall, unframed_body

logger = logging.getLogger("bridge")

_shared_runner = LoopThread("bridge-to-wsgi-loop")


class AsgiToWsgi:
    """A WSGI application that runs an ASGI application.

    :param app: the ASGI application.
    :param grace_period: seconds an app may run on after its response ended
        (background tasks) or after the server closed it (a client that left)
        before its task is cancelled.
    :param startup_timeout: seconds lifespan startup may take.
    :param shutdown_timeout: seconds lifespan shutdown may take on ``close()``.
    :param loop_wait_timeout: seconds a request may wait for the event loop to
        begin it; past that (something blocks the loop) the server thread
        answers 503 and the app is not called for it (``None``: wait forever).

    See the limits page of the docs for why each default is what it is.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        grace_period: float = 10.0,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 10.0,
        loop_wait_timeout: float | None = 30.0,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"to_wsgi() needs an ASGI callable, got {app!r}")
        if loop_wait_timeout is not None and not loop_wait_timeout > 0:
            raise ConfigurationError(
                f"loop_wait_timeout must be > 0 or None, got {loop_wait_timeout}"
            )
        self.app = app
        self.grace_period = grace_period
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.loop_wait_timeout = loop_wait_timeout
        self.runner = _shared_runner
        self.state: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._started_in: int | None = None  # the pid whose loop ran startup
        self._startup_error: str | None = None
        self._shutdown: asyncio.Event | None = None
        self._lifespan_task: asyncio.Task[None] | None = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self._ensure_started()
        if self._startup_error is not None:
            return _answer(start_response, 500, "Internal Server Error")
        advice = unframed_body(environ)
        if advice is not None:
            logger.warning("answered 411 to a chunked request body bridge cannot read: %s", advice)
            return _answer(
                start_response,
                411,
                "Length Required: this server cannot pass a chunked request body on; "
                "send Content-Length",
            )
        try:
            scope = scope_from_environ(environ, self.state)
        except BadRequest as error:
            logger.info("refused a request with 400: %s", error)
            return _answer(start_response, 400, f"Bad Request: {error}")
        return WsgiCall(self, environ, scope).respond(start_response)

    def log_error(self, label: str, when: str, error: BaseException) -> None:
        logger.error("the ASGI app failed on %s %s", label, when, exc_info=error)

    # --- Lifespan.

    def _ensure_started(self) -> None:
        if self._started_in == os.getpid():
            return
        with self._lock:
            if self._started_in == os.getpid():
                return
            self.state = {}
            self._startup_error = None
            outcome: Mailbox[str | None] = new_mailbox()
            self.runner.spawn(self._lifespan(outcome))
            try:
                self._startup_error = outcome.get(timeout=self.startup_timeout)
            except queue.Empty:
                self._startup_error = f"startup took more than {self.startup_timeout} s"
            if self._startup_error is not None:
                logger.error("lifespan startup of %r failed: %s", self.app, self._startup_error)
            self._started_in = os.getpid()
            _open.add(self)  # a started lifespan is held until shutdown ran

    async def _lifespan(self, outcome: Mailbox[str | None]) -> None:
        """The app's lifespan task; ``outcome`` hears once: ``None``, or why startup failed."""
        self._lifespan_task = asyncio.current_task()
        self._shutdown = shutdown = asyncio.Event()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        async with anyio.create_task_group() as group:
            lifespan = AppLifespan(self.app, repr(self.app), scope)
            await lifespan.startup(group)
            outcome.put(lifespan.failure)
            if not lifespan.started:
                group.cancel_scope.cancel()  # an app that failed startup and waits on
                return
            await shutdown.wait()
            await lifespan.shutdown()

    def close(self) -> None:
        """Run lifespan shutdown (once), waiting up to ``shutdown_timeout`` s."""
        _open.discard(self)
        with self._lock:
            if self._started_in != os.getpid() or not self.runner.running:
                return
            self._started_in = None
            shutdown, task = self._shutdown, self._lifespan_task
        if shutdown is None or task is None or task.done():
            return
        ended: Mailbox[None] = new_mailbox()  # made here: close() may run on any thread

        def begin_shutdown() -> None:
            task.add_done_callback(lambda _: ended.put(None))
            shutdown.set()

        self.runner.call_soon(begin_shutdown)
        try:
            ended.get(timeout=self.shutdown_timeout)
        except queue.Empty:
            logger.error("lifespan shutdown of %r took over %s s", self.app, self.shutdown_timeout)

    def __repr__(self) -> str:
        return f"to_wsgi({self.app!r})"


def _answer(start_response: StartResponse, status: int, text: str) -> Iterable[bytes]:
    status_line, headers, body = plain_wsgi_response(status, text)
    start_response(status_line, headers)
    return [body]


_open: set[AsgiToWsgi] = set()


@atexit.register
def _close_at_exit() -> None:
    for bridge in list(_open):
        bridge.close()
    _shared_runner.stop()


def _hook_uwsgi() -> None:
    # uWSGI ends its workers without running Python's atexit on some paths; its
    # own uwsgi.atexit hook runs on those too (chained, not replaced).
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return
    previous = getattr(uwsgi, "atexit", None)

    def close_all() -> None:
        _close_at_exit()
        if previous is not None:
            previous()

    setattr(uwsgi, "atexit", close_all)  # noqa: B010 (uwsgi is only known at run time)


_hook_uwsgi()


def _hook_multiprocessing() -> None:
    # A multiprocessing child (granian's workers are) ends with os._exit()
    # after multiprocessing's own finalizers, without Python's atexit.
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return

    def in_this_child(_: object = None) -> None:
        util.Finalize(None, _close_at_exit, exitpriority=0)

    process = sys.modules.get("multiprocessing.process")
    if process is not None and process.parent_process() is not None:
        in_this_child()
    util.register_after_fork(_close_at_exit, in_this_child)  # a child forked later


_hook_multiprocessing()


def to_wsgi(
    app: ASGIApp,
    *,
    grace_period: float = 10.0,
    startup_timeout: float = 60.0,
    shutdown_timeout: float = 10.0,
    loop_wait_timeout: float | None = 30.0,
) -> AsgiToWsgi:
    """Wrap an ASGI app so that any WSGI server (waitress, gunicorn) can serve it.

    The options are those of ``AsgiToWsgi``.
    """
    return AsgiToWsgi(
        app,
        grace_period=grace_period,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
        loop_wait_timeout=loop_wait_timeout,
    )
