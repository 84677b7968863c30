"""What every executor offers the layers above it."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Context
from typing import ClassVar, TypeVar

from ._job import Job, Sink

T = TypeVar("T")


class Executor:
    """Where sync code runs; subclasses decide how it reaches the event loop."""

    name: ClassVar[str]
    multithread: ClassVar[bool]
    """Whether two jobs may run at the same time on different threads (``wsgi.multithread``)."""

    def job(
        self, function: Callable[[Job[T]], T], sink: Sink, context: Context, label: str
    ) -> Job[T]:
        """A job that calls ``function(job)`` in ``context``; start it with ``await job.run()``."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the executor holds; it starts again lazily if used after."""
