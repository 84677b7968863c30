"""``sync_to_async`` and ``async_to_sync``: the executors, offered to user code.

Context rule, the same at every entry point: the other side runs in a copy of
the caller's context. It sees every contextvar the caller set; what it sets
stays on its side.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import copy_context
from typing import Any, ParamSpec, TypeVar, overload

from ._await import await_, await_here
from ._errors import ConfigurationError
from ._executors import (
    Executor,
    Home,
    Job,
    ThreadJob,
    home,
    make_executor,
)

P = ParamSpec("P")
R = TypeVar("R")

_shared: dict[str, Executor] = {}
_shared_lock = threading.Lock()


def shared_executor(executor: str | Executor) -> Executor:
    """The process-wide executor for a name, made on first use; an instance as it is."""
    if isinstance(executor, Executor):
        return executor
    with _shared_lock:
        found = _shared.get(executor)
        if found is None:
            found = _shared[executor] = make_executor(executor)
        return found


def _chain_home() -> Home:
    """Where the thread-sensitive calls of the current chain run; a new chain starts here."""
    found = home.get()
    if found is None:
        found = Home()
        home.set(found)
    return found


async def _no_items(item: object) -> None:
    raise AssertionError(f"sync_to_async jobs put no items, got {item!r}")


@overload
def sync_to_async(
    function: Callable[P, R], *, executor: str | Executor = ..., thread_sensitive: bool = ...
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def sync_to_async(
    function: None = None, *, executor: str | Executor = ..., thread_sensitive: bool = ...
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def sync_to_async(
    function: Callable[P, R] | None = None,
    *,
    executor: str | Executor = "thread",
    thread_sensitive: bool = False,
) -> Any:
    """Make a blocking function awaitable; works as ``@sync_to_async`` or ``@sync_to_async(...)``.

    ``executor="thread"`` runs each call in the shared thread pool; ``"greenlet"``
    runs it in a greenlet on the caller's loop (for code whose I/O goes through
    ``await_``). Inside the function, ``await_`` runs on the caller's loop.

    ``thread_sensitive=True`` runs every such call of one call chain in one
    thread, for libraries that need thread affinity. A ``to_asgi`` request is
    a chain, under either executor, at any depth of ``await_``; so is a call
    from async code with none around it, and what it leads to. The chain's
    thread is that of its outermost worker thread (a thread executor's request,
    an outer ``sync_to_async``) while it waits in ``await_``, else a thread of
    the chain's own. Different chains never share one, so the process is not
    serialized onto one thread.

    Cancelling the awaiting task: a greenlet gets the cancellation at once, at
    its current ``await_``; a thread cannot be interrupted and finishes its
    call, but its next ``await_`` raises. Either way the caller is released.
    """
    if function is not None:
        _refuse_async(function)
    if thread_sensitive and executor != "thread":
        raise ConfigurationError(
            "thread_sensitive=True keeps calls on one thread; it needs executor='thread'"
        )

    def decorate(target: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
        _refuse_async(target)
        runner = shared_executor(executor)
        label = getattr(target, "__qualname__", repr(target))

        @functools.wraps(target)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            def run(job: Job[R]) -> R:
                return target(*args, **kwargs)

            if thread_sensitive:
                job: Job[R] = ThreadJob(_chain_home(), run, _no_items, copy_context(), label)
            else:
                job = runner.job(run, _no_items, copy_context(), label)
            return await job.run()

        return call

    return decorate if function is None else decorate(function)


def _refuse_async(function: object) -> None:
    """Refuse at wrapping time what a worker could only fail on, or return un-awaited."""
    if not callable(function):
        raise ConfigurationError(
            f"sync_to_async() needs a sync function or callable, got {function!r}"
        )
    if inspect.iscoroutinefunction(function):
        raise ConfigurationError(
            f"sync_to_async() was given the coroutine function {function!r}; await it directly"
        )
    call = getattr(function, "__call__", None)  # noqa: B004 (callable() is known true)
    if not inspect.isclass(function) and inspect.iscoroutinefunction(call):
        raise ConfigurationError(
            f"sync_to_async() was given {function!r}, whose __call__ is async def: calling it "
            "returns a coroutine, not a result; await it directly"
        )


def async_to_sync(function: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """Make an async function callable from sync code; works as ``@async_to_sync``.

    Each call goes through ``await_``: on the server's loop in a bridge worker,
    on the calling thread's own long-lived loop in plain sync code.
    """
    if not callable(function):
        raise ConfigurationError(f"async_to_sync() needs an async function, got {function!r}")

    return _calling_through(await_, function)


def flask_async_views(app: R, *, loop: str = "server") -> R:
    """Run a Flask app's ``async def`` views through bridge; returns the app.

    Flask runs each async view through asgiref, which starts a new thread and
    a new event loop per request. After this call:

    * ``loop="server"`` (default): views run as ``async_to_sync`` does. Under
      ``to_asgi`` on the server's own loop (natively, with the greenlet
      executor), so they can share clients and pools with the ASGI side; under
      a WSGI server, on the serving thread's own long-lived loop.
    * ``loop="thread"``: a worker thread of the thread executor runs views on
      its own long-lived loop instead, which saves two thread wake-ups per
      view; loop-bound objects are then per thread. Greenlets still use the
      server's loop, the one their thread runs.
    """
    if not hasattr(app, "ensure_sync"):
        raise ConfigurationError(f"flask_async_views() needs a Flask app, got {app!r}")
    if loop == "server":
        wait: Callable[[Awaitable[Any]], Any] = await_
    elif loop == "thread":
        wait = await_here
    else:
        raise ConfigurationError(f"loop must be 'server' or 'thread', got {loop!r}")

    def flask_async_to_sync(view: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        # Flask asks for this once per request and calls the result at once:
        # a bare closure, without functools.wraps, is all it needs.
        return lambda *args, **kwargs: wait(view(*args, **kwargs))

    app.async_to_sync = flask_async_to_sync  # type: ignore[attr-defined]
    return app


def _calling_through(
    wait: Callable[[Awaitable[R]], R], function: Callable[P, Awaitable[R]]
) -> Callable[P, R]:
    """A sync function that calls ``function`` and waits for its result with ``wait``."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return wait(function(*args, **kwargs))

    return call
