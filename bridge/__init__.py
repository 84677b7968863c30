"""bridge: join WSGI and ASGI.

Layout (each layer imports only from those above it in this list):

* ``_errors``, ``_types``: the error tree and the shapes of both interfaces.
* ``_core``: the sans-IO translation core (environ, status, headers, response rules).
* ``_streams``: ``wsgi.input`` over ``receive()``, file wrapper, error stream.
* ``_executors``: where sync code runs (threads, greenlets) and how it reaches the loop.
* ``_exchange``, ``_to_asgi``: WSGI app under ASGI: one request's life, the app object.
* ``_lifespans``: an ASGI app's lifespan driven by the bridge (``to_wsgi``, ``fallback``).
* ``_wsgi_call``, ``_to_wsgi``: ASGI app under WSGI: one request's life, the app object.
* ``_await``, ``_helpers``: ``await_``, ``sync_to_async``, ``async_to_sync`` for user code.
* ``_request_scope``: ``request_scope``, a key of the current request.
* ``_detect``, ``_fallback``: ``fallback``, several apps behind one URL space.
* ``_lambda``: ``aws_lambda``, either kind of app as an AWS Lambda handler.
* ``_cli`` and its ``_loading``, ``_serve``, ``_check``, ``_demo``: the ``bridge`` command.
* ``sqlalchemy``: ``FairQueuePool``, pool waits in arrival order (imports SQLAlchemy;
  ``import bridge`` does not import it).
"""

from __future__ import annotations

from ._await import await_ as await_
from ._await import in_greenlet as in_greenlet
from ._core.environ import ASGI_SCOPE_KEY as ASGI_SCOPE_KEY
from ._core.scope import WSGI_ENVIRON_KEY as WSGI_ENVIRON_KEY
from ._errors import AppProtocolError as AppProtocolError
from ._errors import AwaitError as AwaitError
from ._errors import BadRequest as BadRequest
from ._errors import BodyTimeout as BodyTimeout
from ._errors import BridgeError as BridgeError
from ._errors import ClientDisconnected as ClientDisconnected
from ._errors import ConfigurationError as ConfigurationError
from ._errors import HeadersTooLarge as HeadersTooLarge
from ._errors import InvalidChunk as InvalidChunk
from ._errors import InvalidHeader as InvalidHeader
from ._errors import InvalidStatus as InvalidStatus
from ._errors import LifespanFailed as LifespanFailed
from ._errors import RequestBodyTooLarge as RequestBodyTooLarge
from ._errors import StartResponseError as StartResponseError
from ._errors import UnsupportedEvent as UnsupportedEvent
from ._errors import UnsupportedScope as UnsupportedScope
from ._errors import WorkAbandoned as WorkAbandoned
from ._executors import Executor as Executor
from ._executors import GreenletExecutor as GreenletExecutor
from ._executors import ThreadExecutor as ThreadExecutor
from ._fallback import fallback as fallback
from ._helpers import async_to_sync as async_to_sync
from ._helpers import flask_async_views as flask_async_views
from ._helpers import sync_to_async as sync_to_async
from ._lambda import LambdaHandler as LambdaHandler
from ._lambda import aws_lambda as aws_lambda
from ._request_scope import request_scope as request_scope
from ._to_asgi import WsgiToAsgi as WsgiToAsgi
from ._to_asgi import to_asgi as to_asgi
from ._to_wsgi import AsgiToWsgi as AsgiToWsgi
from ._to_wsgi import to_wsgi as to_wsgi

__version__ = "0.1.0"

__all__ = (
    "ASGI_SCOPE_KEY",
    "AppProtocolError",
    "AsgiToWsgi",
    "AwaitError",
    "BadRequest",
    "BodyTimeout",
    "BridgeError",
    "ClientDisconnected",
    "ConfigurationError",
    "Executor",
    "GreenletExecutor",
    "HeadersTooLarge",
    "InvalidChunk",
    "InvalidHeader",
    "InvalidStatus",
    "LambdaHandler",
    "LifespanFailed",
    "RequestBodyTooLarge",
    "StartResponseError",
    "ThreadExecutor",
    "UnsupportedEvent",
    "UnsupportedScope",
    "WSGI_ENVIRON_KEY",
    "WorkAbandoned",
    "WsgiToAsgi",
    "async_to_sync",
    "await_",
    "aws_lambda",
    "fallback",
    "flask_async_views",
    "in_greenlet",
    "request_scope",
    "sync_to_async",
    "to_asgi",
    "to_wsgi",
)


def _fix_module_names() -> None:
    # Public objects report the public module, so reprs and docs say "bridge.X".
    for name in __all__:
        value = globals()[name]
        if getattr(value, "__module__", "").startswith("bridge."):
            value.__module__ = __name__


_fix_module_names()
