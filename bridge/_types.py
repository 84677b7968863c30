"""The shapes that cross the bridge, as seen by both specifications."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol, TypeAlias

# ASGI (https://asgi.readthedocs.io): scopes and messages are plain dicts.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# WSGI (PEP 3333).
Environ: TypeAlias = dict[str, Any]
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
OptExcInfo: TypeAlias = ExcInfo | tuple[None, None, None]
Write: TypeAlias = Callable[[bytes], object]
ResponseHeaders: TypeAlias = list[tuple[str, str]]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: ResponseHeaders, exc_info: OptExcInfo | None = ..., /
    ) -> Write: ...


class ErrorsStream(Protocol):
    """What PEP 3333 asks of ``wsgi.errors``."""

    def write(self, text: str, /) -> object: ...
    def writelines(self, lines: Iterable[str], /) -> object: ...
    def flush(self) -> object: ...


WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
