"""Await providers: sync code in which SQLAlchemy's asyncio drivers can wait.

SQLAlchemy's sync API on an asyncio driver (asyncpg, psycopg in async mode,
aiosqlite) works only inside a greenlet marked as an await provider: its
``await_`` switches to that greenlet's ``parent`` with a bare awaitable and
expects the result back. The greenlet executor's workers are providers
already (their parent is the job's driver). ``provide`` gives the same to
sync code anywhere else: it runs the code in a provider greenlet of its own
and hands each awaitable to a ``wait`` function (a worker thread's crossing
to the server's loop, or ``bridge.await_`` in plain sync code).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any, TypeVar

import greenlet

from .._errors import AwaitError
from ._job import close_unawaited
from ._loop import InContext

T = TypeVar("T")


class ProviderGreenlet(greenlet.greenlet):
    """Runs sync code; SQLAlchemy switches to its ``parent`` with what it must await."""

    __sqlalchemy_greenlet_provider__ = True


def provide(function: Callable[[], T], wait: Callable[[Awaitable[Any], Context | None], Any]) -> T:
    """Call ``function`` in a provider greenlet, answering each of its waits with ``wait``.

    ``wait`` also gets the context the sync code is in when it waits, so that
    the awaitable can run in a copy of it (a span, a request id).
    """
    worker = ProviderGreenlet(function)  # its parent: this greenlet, which serves it
    request = worker.switch()
    while not worker.dead:
        try:
            value = wait(request, worker.gr_context)
        except BaseException as error:  # noqa: PERF203 (free since 3.11; the error is for the worker)
            request = worker.throw(error)
        else:
            request = worker.switch(value)
    result: T = request
    return result


async def await_foreign(awaitable: Awaitable[Any], context: Context | None) -> Any:
    """Await what SQLAlchemy's ``await_`` handed over, as the sync code's own wait."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        close_unawaited(awaitable)
        raise AwaitError(
            "SQLAlchemy's async drivers (asyncpg, psycopg async, aiosqlite) need an asyncio "
            "event loop, and this one is not asyncio (trio?): run the server on asyncio, "
            "or give this engine a sync driver"
        ) from None
    if context is None:
        return await awaitable
    return await InContext(context, awaitable)
