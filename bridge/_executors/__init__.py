"""Executors: where sync code runs, and how it crosses to the event loop and back."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import ConfigurationError
from ._base import Executor
from ._greenlet import GreenletExecutor
from ._home import Home, home, request_context
from ._job import Job, close_unawaited, current_job
from ._thread import ThreadExecutor, ThreadJob

__all__ = [
    "Executor",
    "GreenletExecutor",
    "Home",
    "Job",
    "ThreadExecutor",
    "ThreadJob",
    "close_unawaited",
    "current_job",
    "make_executor",
    "request_context",
    "home",
    "resolve_executor",
]

_NAMES: dict[str, Callable[[], Executor]] = {"thread": ThreadExecutor, "greenlet": GreenletExecutor}


def make_executor(name: str) -> Executor:
    """A new executor of the kind a name says."""
    factory = _NAMES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ConfigurationError(
            f"unknown executor {name!r}: pass 'thread', 'greenlet', "
            "or a ThreadExecutor / GreenletExecutor instance"
        )
    return factory()


def resolve_executor(executor: str | Executor) -> tuple[Executor, bool]:
    """The executor to use, and whether the caller owns it (made it from a name)."""
    if isinstance(executor, Executor):
        return executor, False
    return make_executor(executor), True
