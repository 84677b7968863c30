"""Letting go of an exception the bridge has dealt with, so clean-up runs without the GC.

An exception keeps its traceback, the traceback keeps every frame it passed
through, and each frame keeps its locals: the app's request, its response
object, a streaming generator whose ``finally`` gives back a connection or a
lock. Task groups (anyio's, Starlette's) keep the exception they re-raise in
a frame of that same traceback, which makes a reference cycle: only the
garbage collector frees it, seconds or minutes later. Once the bridge has
logged or answered an exception and hands it to no one, it drops the
tracebacks of the exception and of those chained to it, which breaks every
such cycle and lets reference counting free the frames at once.
"""

from __future__ import annotations


def forget(error: BaseException) -> None:
    """Drop the tracebacks of ``error`` and of every exception chained or grouped in it."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        grouped = getattr(current, "exceptions", None)  # an exception group (3.11+, exceptiongroup)
        if isinstance(grouped, tuple):
            todo.extend(e for e in grouped if isinstance(e, BaseException))
