"""Telling a WSGI app from an ASGI app by its callable, for ``fallback`` and ``bridge serve``.

A coroutine function (or an object whose ``__call__`` is one) is ASGI.
Otherwise the number of positional parameters decides: two (``environ``,
``start_response``) is WSGI, three (``scope``, ``receive``, ``send``) is
ASGI. Anything else is refused with a message saying how to be explicit.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from asgiref.sync import iscoroutinefunction

from ._errors import ConfigurationError

Interface = Literal["wsgi", "asgi"]


def interface_of(app: Any) -> Interface:
    """``"wsgi"`` or ``"asgi"`` for ``app``; ``ConfigurationError`` when it cannot tell."""
    if not callable(app):
        raise ConfigurationError(f"{app!r} is not callable: neither a WSGI nor an ASGI app")
    if inspect.isclass(app):
        raise ConfigurationError(
            f"{app!r} is a class, not an app instance; pass an instance, or an app factory "
            "as 'module:factory()'"
        )
    call = app if inspect.isroutine(app) else type(app).__call__
    if iscoroutinefunction(app) or iscoroutinefunction(call):
        return "asgi"
    count = _positional_parameters(app)
    if count == 2:
        return "wsgi"
    if count == 3:
        return "asgi"
    raise ConfigurationError(
        f"cannot tell whether {app!r} is a WSGI or an ASGI app (it takes {count} positional "
        "arguments, neither 2 nor 3); say which with --interface wsgi|asgi, or wrap it "
        "yourself with bridge.to_asgi() or bridge.to_wsgi()"
    )


def _positional_parameters(app: Any) -> int | str:
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return "an unknown number of"
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = signature.parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        return "any number of"
    return sum(1 for parameter in parameters if parameter.kind in kinds)
