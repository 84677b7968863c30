"""asgiref's ``async_to_sync`` called inside a bridge greenlet.

Code under the greenlet executor runs on the event loop's thread, where
asgiref's ``AsyncToSync`` refuses to run ("You cannot use AsyncToSync in the
same thread as an async event loop"). Flask's stock async views and Django's
async middleware call it. Once a ``GreenletExecutor`` exists, such a call from
one of its greenlets either goes to the loop through the job, like
``await_`` (``GreenletExecutor(asgiref=True)``), or raises ``AwaitError``
naming that switch. Calls anywhere else reach asgiref unchanged.
"""

from __future__ import annotations

import threading
from contextvars import copy_context
from typing import Any

from .._errors import AwaitError
from ._job import current_job

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Wrap ``asgiref.sync.AsyncToSync.__call__`` once per process."""
    global _installed
    with _lock:
        if _installed:
            return
        from asgiref.sync import AsyncToSync

        original = AsyncToSync.__call__

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            job = current_job()
            allows = getattr(job, "allows_asgiref", None)
            if allows is None:  # not in a bridge greenlet: asgiref decides
                return original(self, *args, **kwargs)
            if not allows:
                raise AwaitError(
                    f"asgiref's async_to_sync({getattr(self.awaitable, '__qualname__', '?')}) "
                    "was called under the greenlet executor, which runs on the event loop's "
                    "thread. Use bridge.await_() or bridge.async_to_sync() instead, create "
                    "the executor as GreenletExecutor(asgiref=True) to route asgiref's calls "
                    "through the bridge, or use the thread executor"
                )
            assert job is not None
            return job.await_(self.awaitable(*args, **kwargs), copy_context())

        call.__wrapped__ = original  # type: ignore[attr-defined]
        AsyncToSync.__call__ = call  # type: ignore[method-assign]
        _installed = True
