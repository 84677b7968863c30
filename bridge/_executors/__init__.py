"""Executors: where sync code runs, and how it crosses to the event loop and back."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import ConfigurationError
from ._base import Executor
from ._greenlet import GreenletExecutor
from ._job import Job, current_job
from ._thread import StickyThread, ThreadExecutor, ThreadJob, sync_thread_job

__all__ = [
    "Executor",
    "GreenletExecutor",
    "Job",
    "StickyThread",
    "ThreadExecutor",
    "ThreadJob",
    "current_job",
    "resolve_executor",
    "sync_thread_job",
]

_NAMES: dict[str, Callable[[], Executor]] = {"thread": ThreadExecutor, "greenlet": GreenletExecutor}


def resolve_executor(executor: str | Executor) -> tuple[Executor, bool]:
    """The executor to use, and whether the caller owns it (made it from a name)."""
    if isinstance(executor, Executor):
        return executor, False
    factory = _NAMES.get(executor) if isinstance(executor, str) else None
    if factory is None:
        raise ConfigurationError(
            f"unknown executor {executor!r}: pass 'thread', 'greenlet', "
            "or a ThreadExecutor / GreenletExecutor instance"
        )
    return factory(), True
