"""Await providers: sync code in which SQLAlchemy's asyncio drivers can wait.

SQLAlchemy's sync API on an asyncio driver (asyncpg, psycopg in async mode,
aiosqlite) works only inside a greenlet marked as an await provider: its
``await_`` switches to that greenlet's ``parent`` with a bare awaitable and
expects the result back. The greenlet executor's workers are providers
already (their parent is the job's driver). ``provide`` gives the same to
sync code anywhere else: it runs the code in a provider greenlet of its own
and hands each awaitable to a ``wait`` function. In plain sync code
(``bridge.in_greenlet``) that runs it on the thread's own loop; in a thread
worker it refuses, saying what to use, where SQLAlchemy would only have said
``MissingGreenlet``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any, NoReturn, TypeVar

import greenlet

from .._errors import AwaitError
from ._job import Outcome, close_unawaited, reuse_under, serve_boxed, unbox
from ._loop import InContext

T = TypeVar("T")


class ProviderGreenlet(greenlet.greenlet):
    """Runs sync code; SQLAlchemy switches to its ``parent`` with what it must await."""

    __sqlalchemy_greenlet_provider__ = True


class _Finished:
    """What a provider greenlet switches back with when its call has ended."""

    __slots__ = ("box",)

    def __init__(self, box: list[Outcome]) -> None:
        self.box = box


class _IdleProviders(threading.local):
    def __init__(self) -> None:
        self.workers: list[ProviderGreenlet] = []


_idle = _IdleProviders()
_IDLE_PER_THREAD = 4  # nested calls on one thread are rare and shallow


def provide(function: Callable[[], T], wait: Callable[[Awaitable[Any]], Any]) -> T:
    """Call ``function`` in a provider greenlet, answering each of its waits with ``wait``.

    ``function`` runs in the caller's context, as a plain call would. Provider
    greenlets are kept per thread and reused: a new one costs several times
    more than the two switches of a call.
    """
    me = greenlet.getcurrent()
    worker = _provider_under(me)
    worker.gr_context = me.gr_context
    request = worker.switch([function])
    try:
        while type(request) is not _Finished:
            try:
                value = wait(request)
            except BaseException as error:  # noqa: PERF203 (free since 3.11; the worker gets it)
                request = worker.throw(error)
            else:
                request = worker.switch(value)
    finally:
        worker.gr_context = None
    workers = _idle.workers
    if len(workers) < _IDLE_PER_THREAD:
        workers.append(worker)
    result: T = unbox(request.box)
    return result


def _provider_under(parent: greenlet.greenlet) -> ProviderGreenlet:
    """An idle provider of this thread, else a new one, whose ``parent`` is ``parent``."""
    worker = reuse_under(parent, _idle.workers)
    if worker is None:
        worker = ProviderGreenlet(_serve_calls, parent)
    return worker


def _call(function: Callable[[], Any]) -> Any:
    return function()


_serve_calls = functools.partial(serve_boxed, run=_call, report=_Finished)


def refuse_off_the_loop_thread(awaitable: Awaitable[Any]) -> NoReturn:
    """SQLAlchemy's wait in a thread other than the loop's: refused, saying what to use.

    The driver's pool and connections belong to the loop's thread; the pool's
    sync code would hand connections between threads through asyncio futures,
    which are not thread-safe.
    """
    close_unawaited(awaitable)
    raise AwaitError(
        "SQLAlchemy's asyncio drivers (asyncpg, psycopg async, aiosqlite) cannot run in the "
        "thread executor's worker threads: their pool and connections belong to the event "
        "loop's thread. Serve this app with executor='greenlet', or give the engine a sync "
        "driver (postgresql+psycopg://, sqlite://) under the thread executor"
    )


async def await_foreign(awaitable: Awaitable[Any], context: Context) -> Any:
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
    return await InContext(context, awaitable)
