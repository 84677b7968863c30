"""Every error the bridge raises on purpose.

The tree::

    BridgeError
    ├── ConfigurationError        an option given to the bridge is wrong
    ├── UnsupportedScope          the server sent a scope type the bridge does not serve
    ├── AppProtocolError          the WSGI app broke PEP 3333 (answered with 500)
    │   ├── StartResponseError    start_response called twice, too late, or never
    │   ├── InvalidStatus         a status line that is not "NNN reason"
    │   ├── InvalidHeader         a header name or value that must not reach the wire
    │   └── InvalidChunk          a body chunk that is not bytes (also a TypeError)
    ├── BadRequest                the client's request cannot be translated (answered with 400)
    │   └── HeadersTooLarge       too many request headers, or too many bytes of them (431)
    ├── RequestBodyTooLarge       the body passed the configured limit (answered with 413)
    ├── BodyTimeout               the body stopped arriving for body_timeout s (408; a TimeoutError)
    ├── ClientDisconnected        the client went away (also an OSError)
    ├── WorkAbandoned             the async caller of this sync code was cancelled
    └── AwaitError                await_() was called where it cannot work

Each error that maps to an HTTP answer carries it in ``status_hint``.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""

    status_hint: int = 500


class ConfigurationError(BridgeError, ValueError):
    """An option passed to the bridge is not usable; the message names the fix."""


class UnsupportedScope(BridgeError):
    """The server sent a scope type that this bridge does not serve."""


class AppProtocolError(BridgeError):
    """The WSGI application broke a rule of PEP 3333."""


class StartResponseError(AppProtocolError):
    """``start_response`` was called twice, after the body began, or never."""


class InvalidStatus(AppProtocolError, ValueError):
    """The status given to ``start_response`` is not a three-digit code and a reason."""


class InvalidHeader(AppProtocolError, ValueError):
    """A response header that would corrupt or split the response on the wire."""


class InvalidChunk(AppProtocolError, TypeError):
    """The application yielded something other than bytes."""


class BadRequest(BridgeError):
    """The request cannot be turned into a WSGI environ; the client gets 400."""

    status_hint = 400


class RequestBodyTooLarge(BridgeError):
    """The request body is larger than ``max_body_size``; the client gets 413."""

    status_hint = 413


class HeadersTooLarge(BadRequest):
    """Too many request headers, or too many bytes of them; the client gets 431.

    The limits are ``to_asgi``'s ``max_headers`` and ``max_header_bytes``; the
    app is not called.
    """

    status_hint = 431


class BodyTimeout(BridgeError, TimeoutError):
    """No request body arrived for ``body_timeout`` seconds while the app waited to read it.

    Raised from ``wsgi.input.read()`` so the worker unwinds and is free again;
    the client gets 408 if no response began. It is a ``TimeoutError``, so an
    app that treats ``OSError`` from its input as "the client is gone" does so here.
    """

    status_hint = 408


class ClientDisconnected(BridgeError, OSError):
    """The client went away; reading the body or sending more output is pointless."""


class WorkAbandoned(BridgeError):
    """Raised in sync code at its next crossing once its async caller was cancelled.

    A thread cannot be stopped from outside; this tells it to unwind and return.
    """


class AwaitError(BridgeError, RuntimeError):
    """``await_`` was called from a place where waiting would deadlock or cannot work."""


class LifespanFailed(BridgeError, RuntimeError):
    """An app's lifespan startup failed; the message names the app and its reason."""


class UnsupportedEvent(BridgeError, ValueError):
    """``aws_lambda`` got an event from a source it does not translate to HTTP."""
