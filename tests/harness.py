"""A fake ASGI server for in-process tests: scripted receive(), recorded send()."""

from __future__ import annotations

import wsgiref.validate
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio

from bridge._types import Message, Scope, WSGIApp


def make_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    root_path: str = "",
    **extra: Any,
) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": query_string,
        "root_path": root_path,
        "headers": [(b"host", b"testserver"), *headers],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    scope.update(extra)
    return scope


@dataclass
class Exchange:
    """What the app sent, and how its call ended."""

    messages: list[Message] = field(default_factory=list)
    error: BaseException | None = None
    receive_calls: int = 0

    @property
    def start(self) -> Message:
        assert self.messages, "nothing was sent"
        assert self.messages[0]["type"] == "http.response.start", self.messages
        return self.messages[0]

    @property
    def status(self) -> int:
        status: int = self.start["status"]
        return status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.start["headers"])

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key == name]
        return values[0] if values else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def complete(self) -> bool:
        last = self.messages[-1] if self.messages else {}
        return last.get("type") == "http.response.body" and not last.get("more_body", False)


class FakeServer:
    """Calls an ASGI app the way a server would; ``body`` pieces arrive one per receive().

    After the body, receive() waits until the response is complete and then
    reports ``http.disconnect`` (as uvicorn does), or right away when
    ``disconnect_after_body`` is set.
    """

    def __init__(
        self,
        app: Any,
        body: Iterable[bytes] = (),
        *,
        disconnect_after_body: bool = False,
        send_fails_after: int | None = None,
        on_send: Any = None,
    ) -> None:
        self.app = app
        self.pieces = list(body)
        self.disconnect_after_body = disconnect_after_body
        self.send_fails_after = send_fails_after
        self.on_send = on_send

    async def request(self, scope: Scope, timeout: float = 10.0) -> Exchange:
        exchange = Exchange()
        pieces = list(self.pieces)
        done = anyio.Event()
        body_sent = False

        async def receive() -> Message:
            nonlocal body_sent
            exchange.receive_calls += 1
            if not body_sent:
                if pieces:
                    piece = pieces.pop(0)
                    body_sent = not pieces
                    return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
                body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if not self.disconnect_after_body:
                await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if (
                self.send_fails_after is not None
                and len(exchange.messages) >= self.send_fails_after
            ):
                raise OSError("connection reset by peer")
            exchange.messages.append(message)
            if self.on_send is not None:
                await self.on_send(message, exchange)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done.set()

        try:
            with anyio.fail_after(timeout):
                await self.app(scope, receive, send)
        except Exception as error:
            exchange.error = error
        finally:
            done.set()
        return exchange


def validated(app: WSGIApp) -> WSGIApp:
    """The app wrapped in the stdlib's PEP 3333 validator (it checks both sides)."""
    return wsgiref.validate.validator(app)  # type: ignore[no-any-return]


def run(coroutine_function: Any, *args: Any, backend: str = "asyncio") -> Any:
    return anyio.run(coroutine_function, *args, backend=backend)
