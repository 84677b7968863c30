"""``request_scope``: a key for "this request's" objects, such as a ``scoped_session``.

A ``scoped_session`` keyed by thread breaks under the greenlet executor (every
request runs on the loop's thread) and a thread-pool worker serves many
requests in turn. The job is what a request's sync code runs in under both
executors, so it is the key; outside any job, the current thread is (under
gevent's patching, its greenlet's thread object). Not a greenlet: holding
another thread's main greenlet after that thread ended can crash greenlet.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from ._executors import current_job


def request_scope() -> Hashable:
    """A hashable key of the request whose sync code runs here.

    For ``scoped_session(factory, scopefunc=bridge.request_scope)``: each
    request gets its own session under either executor. The key lives as long
    as the registry holds it, so end each request with ``Session.remove()``.
    """
    job = current_job()
    if job is not None:
        return job
    return threading.current_thread()
