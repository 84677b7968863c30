"""Django under the greenlet executor: refused, loudly, at setup and on its first request.

A greenlet runs on the event loop's thread, where Django refuses ORM calls
(``SynchronousOnlyOperation``). Handing each query to a worker thread
instead leaves its connection on a thread that Django's end-of-request
clean-up (``request_finished``: closing or recycling connections, per
``CONN_MAX_AGE``) never visits, so an open transaction or a dead connection
outlives the request and meets the next one. The thread executor runs a
request, its clean-up included, on one thread, as Django expects.

``to_asgi()`` refuses a Django app it can see (itself, or inside WSGI
middleware that keeps it as an attribute); a Django app it cannot see (a
middleware closure) is refused by its first request, which answers 500
before any view runs. Nothing here imports Django: a process that has not
imported it pays nothing.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import greenlet

from ._errors import ConfigurationError
from ._executors import Executor
from ._executors._job import JobGreenlet

_WRAPPING = ("__wrapped__", "app", "application", "wsgi_app", "wrapped", "_app", "func")
_DEPTH = 8

_MESSAGE = (
    "{what} is served with the greenlet executor, which Django cannot use safely: its "
    "ORM refuses to run on the event loop's thread, and queries handed to other threads "
    "escape Django's end-of-request clean-up (connections and transactions leak into "
    "later requests). Use executor='thread' (the default) for Django apps"
)


def refuse_django_under_greenlets(app: Any, executor: Executor) -> None:
    """Raise ``ConfigurationError`` if ``app`` is, or visibly wraps, a Django handler.

    Also arms the first-request check for Django apps hidden from view.
    """
    if executor.multithread or "django.core.handlers.base" not in sys.modules:
        return
    from django.core.handlers.base import BaseHandler  # type: ignore[import-untyped]

    if _finds(app, BaseHandler):
        raise ConfigurationError(_MESSAGE.format(what=f"the Django app {app!r}"))
    _watch_requests()


def _finds(app: Any, kind: type) -> bool:
    seen: set[int] = set()
    found = [app]
    for _ in range(_DEPTH):
        inner = []
        for candidate in found:
            if isinstance(candidate, kind):
                return True
            if id(candidate) in seen:
                continue
            seen.add(id(candidate))
            if isinstance(candidate, functools.partial):
                inner.append(candidate.func)
            inner.extend(_attribute(candidate, name) for name in _WRAPPING)
            inner.append(_attribute(candidate, "__self__"))  # a bound method
        found = [candidate for candidate in inner if candidate is not None]
        if not found:
            return False
    return False


def _attribute(candidate: Any, name: str) -> Any:
    try:
        return getattr(candidate, name, None)
    except Exception:  # a property that fails is not a wrapped app
        return None


@functools.cache
def _watch_requests() -> None:
    from django.core.signals import request_started  # type: ignore[import-untyped]

    request_started.connect(_refuse, weak=False, dispatch_uid="bridge.refuse_greenlets")


def _refuse(sender: Any, **kwargs: Any) -> None:
    current = greenlet.getcurrent()
    if type(current) is JobGreenlet and current.job is not None:
        raise ConfigurationError(_MESSAGE.format(what=f"the Django request {current.job.label}"))
