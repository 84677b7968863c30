"""RELIABILITY.md sections B and C: response headers and framing, in both directions.

Section B (15-25): header validation, injection and encoding. Section C (26-32):
Content-Length and message framing. ``to_asgi`` runs under uvicorn (h11 with the
greenlet executor, httptools with the thread executor); ``to_wsgi`` under waitress
and gunicorn. The apps, servers and the ``Wire`` raw client live here and are shared
with tests/test_security.py. Cases already proven elsewhere are named in
docs/security.md; the tests here cover the rest, mostly on the wire.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import waitress.server  # type: ignore[import-untyped]

from bridge import InvalidHeader, to_asgi, to_wsgi
from bridge._core.headers import encode_headers
from bridge._core.scope import wsgi_headers
from bridge._types import Receive, Scope, Send
from tests.harness import FakeServer, make_scope
from tests.servers import HOST, connect, uvicorn_server, wait_for_port
from tests.test_e2e_to_wsgi import gunicorn

EVIL = ("200 OK", [("X-Evil", "a\r\nSet-Cookie: evil=1")], b"should never be sent")
HOP_BY_HOP = [
    ("Connection", "close"),
    ("Transfer-Encoding", "chunked"),
    ("Keep-Alive", "timeout=9"),
    ("Content-Length", "4"),
]
# Canned answers at /canned/<name>, the same from the WSGI app and the ASGI app.
CANNED: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {
    "crlf-value": EVIL,
    "lf-value": ("200 OK", [("X-Evil", "a\nSet-Cookie: evil=1")], EVIL[2]),
    "cr-value": ("200 OK", [("X-Evil", "a\rSet-Cookie: evil=1")], EVIL[2]),
    "nul-value": ("200 OK", [("X-Evil", "a\x00evil")], EVIL[2]),
    "esc-value": ("200 OK", [("X-Evil", "a\x1b[31mevil")], EVIL[2]),
    "bad-name": ("200 OK", [("X Evil:Name", "v")], EVIL[2]),
    "crlf-name": ("200 OK", [("X-Evil\r\nSet-Cookie", "evil=1")], EVIL[2]),
    "crlf-status": ("200 OK\r\nSet-Cookie: evil=1", [], EVIL[2]),
    "not-latin1": ("200 OK", [("X-Evil", "evil \u65e5\u672c")], EVIL[2]),
    "latin1": ("200 OK", [("X-Name", "caf\xe9"), ("Content-Length", "2")], b"ok"),
    "cookies": ("200 OK", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b"ok"),
    "big": ("200 OK", [("X-Big", "v" * 1_000_000), ("Content-Length", "2")], b"ok"),
    "long": ("200 OK", [("Content-Length", "5")], b"0123456789"),
    "short": ("200 OK", [("Content-Length", "100")], b"0123456789"),
    "head": ("200 OK", [("Content-Length", "4")], b"body"),
    "no-content": ("204 No Content", [("Content-Length", "4")], b"body"),
    "not-modified": ("304 Not Modified", [("Content-Length", "4")], b"body"),
    "single": ("200 OK", [("Content-Type", "text/plain")], b"single item"),
    "two-lengths": ("200 OK", [("Content-Length", "5"), ("Content-Length", "7")], b"0123456789"),
    "signed-length": ("200 OK", [("Content-Length", "+10")], b"0123456789"),
    "hop-by-hop": ("200 OK", HOP_BY_HOP, b"body"),
}
INJECTIONS = [name for name, (_, _, body) in CANNED.items() if body == EVIL[2]]
ASGI_INJECTIONS = [name for name in INJECTIONS if name != "not-latin1"]  # ASGI headers are bytes


def report_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/canned/<name>`` answers from CANNED; any other path reports what the app saw."""
    path = environ["PATH_INFO"]
    if path.startswith("/canned/"):
        status, headers, body = CANNED[path[8:]]
        start_response(status, headers)
        return [body]
    body = environ["wsgi.input"].read()  # to the end the server framed
    scope = environ["asgi.scope"]
    seen = {
        "marker": "app",
        "content_length": environ.get("CONTENT_LENGTH"),
        "body": body.decode("latin-1"),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "x_auth_user": environ.get("HTTP_X_AUTH_USER"),
    }
    answer = json.dumps(seen).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]


async def report_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The same routes as ``report_wsgi``, as an ASGI app (served through ``to_wsgi``)."""
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    path = scope["path"]
    if path.startswith("/canned/"):
        status, headers, body = CANNED[path[8:]]
        code: object = status if "\r" in status else int(status[:3])
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        await send({"type": "http.response.start", "status": code, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return
    received = b""
    while True:
        message = await receive()
        received += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    def values(name: bytes) -> list[str]:
        return [value.decode("latin-1") for key, value in scope["headers"] if key == name]

    seen = {
        "marker": "app",
        "content_length": values(b"content-length"),
        "body": received.decode("latin-1"),
        "path": path,
        "raw_path": scope["raw_path"].decode("latin-1"),
        "root_path": scope["root_path"],
        "x_auth_user": values(b"x-auth-user"),
    }
    answer = json.dumps(seen).encode()
    length = str(len(answer)).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    await send({"type": "http.response.body", "body": answer})


gunicorn_app = to_wsgi(report_asgi)  # what the gunicorn worker imports


# --- A raw client that reads responses as HTTP/1.1 frames them --------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    raw: bytes
    body: bytes = b""

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    def seen(self) -> dict[str, Any]:
        """What the app reported; a reply that is not the app's report fails the test."""
        data: dict[str, Any] = json.loads(self.body)
        assert data["marker"] == "app", data
        return data


@dataclass
class Wire:
    """One connection; ``reply()`` reads the next response as a strict HTTP/1.1 client."""

    port: int
    sock: socket.socket = field(init=False)
    buffer: bytes = b""
    eof: bool = False

    def __post_init__(self) -> None:
        self.sock = connect(self.port, timeout=5)

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> Wire:
        self.sock.sendall(data)
        return self

    def _more(self) -> bool:
        piece = b"" if self.eof else self.sock.recv(1 << 20)
        self.eof = not piece
        self.buffer += piece
        return bool(piece)

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size and self._more():
            pass
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            assert self._more(), f"the connection ended inside a line: {self.buffer[:200]!r}"
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self, head_only: bool = False) -> Reply | None:
        """The next response, or None when the server closed the connection instead."""
        if not self.buffer and not self._more():
            return None
        while b"\r\n\r\n" not in self.buffer:
            assert self._more(), f"the connection ended inside a head: {self.buffer[:200]!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1."), f"no status line: {head[:200]!r}"
        headers = [
            (n.strip().lower(), v.strip()) for n, _, v in (x.partition(b":") for x in lines[1:])
        ]
        reply = Reply(int(lines[0].split()[1]), headers, head)
        if head_only or reply.status in (204, 304) or reply.status < 200:
            return reply
        if reply.values(b"transfer-encoding") == [b"chunked"]:
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._take(size))
                self._line()
            while self._line():  # trailers, then the blank line
                pass
            reply.body = b"".join(parts)
        elif reply.values(b"content-length"):
            reply.body = self._take(int(reply.values(b"content-length")[-1]))
        else:
            while self._more():
                pass
            reply.body, self.buffer = self.buffer, b""
        reply.raw += b"\r\n\r\n" + reply.body
        return reply

    def closed(self) -> bool:
        """Whether the server ends the connection with nothing more sent."""
        return not self.buffer and not self._more()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


FOLLOW = get("/follow")


# --- The servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_to_asgi(**options: Any) -> Iterator[dict[str, int]]:
    """uvicorn serving ``to_asgi(report_wsgi)``: h11 with greenlets, httptools with threads."""
    with contextlib.ExitStack() as stack:
        ports = {}
        for http, executor in (("h11", "greenlet"), ("httptools", "thread")):
            app = to_asgi(report_wsgi, executor=executor)
            ports[http] = stack.enter_context(uvicorn_server(app, http=http, **options)).port
        yield ports


@contextlib.contextmanager
def serve_to_wsgi() -> Iterator[dict[str, int]]:
    """``to_wsgi(report_asgi)`` under waitress (in a thread) and gunicorn gthread (a process)."""
    server = waitress.server.create_server(gunicorn_app, host=HOST, port=0, threads=4)
    port = int(server.effective_port)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        with gunicorn("tests.test_rel_headers:gunicorn_app", "gthread") as (url, _):
            yield {"waitress": port, "gunicorn": int(url.rsplit(":", 1)[1])}
    finally:
        server.close()
        thread.join(5)


@pytest.fixture(scope="module")
def asgi_side() -> Iterator[dict[str, int]]:
    with serve_to_asgi() as ports:
        yield ports


@pytest.fixture(scope="module")
def wsgi_side() -> Iterator[dict[str, int]]:
    with serve_to_wsgi() as ports:
        yield ports


def environ_for(method: str, body: bytes = b"", **extra: Any) -> dict[str, Any]:
    """A minimal environ, as a WSGI server would build it for ``to_wsgi``."""
    base = {"REQUEST_METHOD": method, "PATH_INFO": "/", "wsgi.input": io.BytesIO(body)}
    return {**base, "SCRIPT_NAME": "", "QUERY_STRING": "", "wsgi.errors": sys.stderr, **extra}


def call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    """Call a WSGI app as a server would; the status line and the whole body."""
    answer: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        answer[:] = [status]
        return None

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return answer[0], body


# --- B. Header validation, injection and encoding (15-19, 20: tests/test_security.py) --------

CONTROLS = [chr(code) for code in range(0x20) if code != 0x09] + ["\x7f"]


def test_every_control_character_is_refused_in_names_and_values_both_ways() -> None:  # 17, 18
    for char in CONTROLS:
        for bad in ([("X-A", f"a{char}b")], [(f"X-A{char}", "v")]):
            with pytest.raises(InvalidHeader):
                encode_headers(bad)  # to_asgi: what start_response checks
            with pytest.raises(InvalidHeader):
                wsgi_headers([(n.encode("latin-1"), v.encode("latin-1")) for n, v in bad])
    assert encode_headers([("X-A", "a\tb")]) == [(b"x-a", b"a\tb")]


def all_ports(*sides: dict[str, int]) -> list[int]:
    return [port for side in sides for port in side.values()]


def test_latin1_values_reach_the_wire_as_latin1_bytes(  # 21
    asgi_side: dict[str, int], wsgi_side: dict[str, int]
) -> None:
    for port in all_ports(asgi_side, wsgi_side):
        with Wire(port).send(get("/canned/latin1")) as wire:
            reply = wire.reply()
        assert reply is not None and reply.values(b"x-name") == [b"caf\xe9"]


def test_hop_by_hop_headers_from_the_app_never_reach_the_wire(  # 22
    asgi_side: dict[str, int], wsgi_side: dict[str, int]
) -> None:
    for port in all_ports(asgi_side, wsgi_side):
        with Wire(port).send(get("/canned/hop-by-hop") + FOLLOW) as wire:
            reply, follow = wire.reply(), wire.reply()
        assert reply is not None and (reply.status, reply.body) == (200, b"body")
        assert not reply.values(b"transfer-encoding") and not reply.values(b"keep-alive")
        assert b"close" not in b"".join(reply.values(b"connection")).lower()
        assert follow is not None and follow.seen()["path"] == "/follow"


def test_repeated_set_cookie_headers_stay_apart_and_in_order(  # 23
    asgi_side: dict[str, int], wsgi_side: dict[str, int]
) -> None:
    for port in all_ports(asgi_side, wsgi_side):
        with Wire(port).send(get("/canned/cookies")) as wire:
            reply = wire.reply()
        assert reply is not None and reply.values(b"set-cookie") == [b"a=1", b"b=2"]


@pytest.mark.anyio
async def test_response_header_names_reach_the_asgi_server_lowercased(executor: str) -> None:
    exchange = await FakeServer(to_asgi(report_wsgi, executor=executor)).request(  # 24
        make_scope("/canned/cookies")
    )
    assert exchange.headers == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


def test_a_one_megabyte_header_goes_out_whole(  # 25
    asgi_side: dict[str, int], wsgi_side: dict[str, int]
) -> None:
    for port in all_ports(asgi_side, wsgi_side):
        with Wire(port).send(get("/canned/big") + FOLLOW) as wire:
            reply, follow = wire.reply(), wire.reply()
        assert reply is not None and reply.values(b"x-big") == [b"v" * 1_000_000]
        assert reply.body == b"ok"
        assert follow is not None and follow.seen()["path"] == "/follow"


# --- C. Content-Length and message framing ----------------------------------------------------


def test_a_body_short_of_its_content_length_ends_the_connection(  # 26
    asgi_side: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    for port in asgi_side.values():  # httptools and h11
        with Wire(port).send(get("/canned/short") + FOLLOW) as wire:
            reply = wire.reply()
            assert reply is not None and reply.body == b"0123456789"  # 10 of the 100 declared
            assert wire.closed(), "the connection was reused after a short body"
    errors = [str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1]]
    assert any("90 bytes short" in error for error in errors)


def test_a_body_past_its_content_length_is_cut_and_the_connection_kept(  # 27
    asgi_side: dict[str, int], wsgi_side: dict[str, int]
) -> None:
    for port in all_ports(asgi_side, wsgi_side):
        with Wire(port).send(get("/canned/long") + FOLLOW) as wire:
            reply, follow = wire.reply(), wire.reply()
        assert reply is not None and reply.body == b"01234"
        assert follow is not None and follow.seen()["path"] == "/follow"


def test_head_keeps_the_headers_and_sends_no_body(asgi_side: dict[str, int]) -> None:  # 28
    for port in asgi_side.values():
        request = b"HEAD /canned/head HTTP/1.1\r\nHost: test\r\n\r\n"
        with Wire(port).send(request + FOLLOW) as wire:
            reply, follow = wire.reply(head_only=True), wire.reply()
        assert reply is not None and reply.values(b"content-length") == [b"4"]
        assert follow is not None and follow.seen()["path"] == "/follow"


@pytest.mark.parametrize("name", ["no-content", "not-modified"])
def test_bodiless_statuses_leak_no_body(  # 29
    asgi_side: dict[str, int], wsgi_side: dict[str, int], name: str
) -> None:
    for port in all_ports(asgi_side, wsgi_side):
        with Wire(port).send(get(f"/canned/{name}") + FOLLOW) as wire:
            reply, follow = wire.reply(), wire.reply()
        assert reply is not None and reply.status in (204, 304)
        if reply.status == 204:
            assert not reply.values(b"content-length")
        # waitress closes after a bodiless answer the app gave a body; the others go on.
        assert follow is None or follow.seen()["path"] == "/follow"


@pytest.mark.anyio
@pytest.mark.parametrize("lengths", [["abc"], ["-1"], ["+5"], ["5, 5"], ["1.5"], ["5", "5"]])
async def test_a_content_length_that_is_not_one_number_is_a_500(  # 30
    executor: str, lengths: list[str]
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", value) for value in lengths])
        return [b"12345"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert (exchange.status, exchange.body) == (500, b"Internal Server Error")


def test_an_invalid_content_length_never_reaches_the_wire(asgi_side: dict[str, int]) -> None:
    for port in asgi_side.values():  # 30, end to end
        with Wire(port).send(get("/canned/two-lengths") + get("/canned/signed-length")) as wire:
            first, second = wire.reply(), wire.reply()
        assert first is not None and second is not None
        assert (first.status, second.status) == (500, 500)


@pytest.mark.anyio
async def test_a_single_item_body_goes_out_as_one_final_message(executor: str) -> None:  # 31
    exchange = await FakeServer(to_asgi(report_wsgi, executor=executor)).request(
        make_scope("/canned/single")
    )
    assert [m["type"] for m in exchange.messages] == ["http.response.start", "http.response.body"]
    assert exchange.messages[1] == {
        "type": "http.response.body",
        "body": b"single item",
        "more_body": False,
    }


def test_a_single_item_body_is_framed_by_the_server(asgi_side: dict[str, int]) -> None:  # 31
    for port in asgi_side.values():
        with Wire(port).send(get("/canned/single") + FOLLOW) as wire:
            reply, follow = wire.reply(), wire.reply()
        assert reply is not None and reply.body == b"single item"
        assert follow is not None and follow.seen()["path"] == "/follow"
