"""RELIABILITY.md section F, request bodies: the cases not already covered elsewhere.

Reads through the whole bridge (not only the stream class) with bodies split
oddly, and two real-uvicorn cases: an upload the app never reads, and
``Expect: 100-continue`` to an app that answers without reading.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from bridge import to_asgi
from tests.harness import FakeServer, make_scope
from tests.servers import connect, read_head, read_response, status_of, uvicorn_server

BODY = b"first line\nsecond\n\nno newline at the end"

READS: list[tuple[str, tuple[int, ...]]] = [
    ("read", (0,)),
    ("read", (3,)),
    ("readline", ()),
    ("readline", (2,)),
    ("readline", ()),
    ("readline", (0,)),
    ("read", (4,)),
    ("readline", (100,)),
    ("read", ()),
    ("read", ()),
    ("read", (5,)),
    ("readline", ()),
]


def split_oddly(body: bytes) -> list[list[bytes]]:
    """The body whole, byte by byte, in threes with empty messages between, and unevenly."""
    threes: list[bytes] = []
    for start in range(0, len(body), 3):
        threes += [body[start : start + 3], b""]
    return [
        [body],
        [bytes([byte]) for byte in body],
        threes,
        [body[:1], body[1:12], body[12:13], body[13:]],
    ]


def replay(stream: Any) -> list[object]:
    return [getattr(stream, method)(*args) for method, args in READS]


@pytest.mark.anyio
@pytest.mark.parametrize("pieces", split_oddly(BODY), ids=["whole", "bytes", "threes", "uneven"])
async def test_every_read_method_through_the_bridge_matches_bytesio(
    executor: str, pieces: list[bytes]
) -> None:
    results: list[object] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        results.extend(replay(environ["wsgi.input"]))
        start_response("200 OK", [])
        return [b"read"]

    scope = make_scope(method="POST", headers=[(b"content-length", str(len(BODY)).encode())])
    exchange = await FakeServer(to_asgi(app, executor=executor), pieces).request(scope)
    assert exchange.status == 200
    assert results == replay(io.BytesIO(BODY))
    assert results[-3:] == [b"", b"", b""]  # past the end: empty bytes, never an error


@pytest.mark.anyio
async def test_readlines_through_the_bridge_adds_no_newline(executor: str) -> None:
    lines: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        lines.extend(environ["wsgi.input"].readlines())
        start_response("200 OK", [])
        return [b""]

    scope = make_scope(method="POST", headers=[(b"transfer-encoding", b"chunked")])
    server = FakeServer(to_asgi(app, executor=executor), [b"a\nb", b"\nc"])
    assert (await server.request(scope)).status == 200
    assert lines == [b"a\n", b"b\n", b"c"]


def answers_without_reading(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status = "403 Forbidden" if environ["PATH_INFO"] == "/reject" else "200 OK"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "7")])
    return [b"ignored"]


def counting_receives(app: Any, receives: list[str]) -> Any:
    """ASGI middleware that records every receive() the bridge makes."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            receives.append(message["type"])
            return message

        await app(scope, counted if scope["type"] == "http" else receive, send)

    return wrapper


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
def test_a_huge_upload_the_app_never_reads_is_not_pulled(executor: str) -> None:
    receives: list[str] = []
    app = counting_receives(to_asgi(answers_without_reading, executor=executor), receives)
    with uvicorn_server(app) as running:
        with connect(running.port) as sock:
            sock.sendall(
                b"POST /ignore HTTP/1.1\r\nHost: test\r\nContent-Length: 1073741824\r\n\r\n"
                + b"b" * (1024 * 1024)
            )
            head, body = read_response(sock)
        assert status_of(head) == 200
        assert body == b"ignored"
        with connect(running.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            assert status_of(read_response(sock)[0]) == 200
    assert receives == []


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
def test_expect_100_continue_to_an_app_that_rejects_gets_the_answer_and_no_100(
    executor: str,
) -> None:
    app = to_asgi(answers_without_reading, executor=executor)
    with uvicorn_server(app) as running, connect(running.port, timeout=5) as sock:
        sock.sendall(
            b"POST /reject HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        head, rest = read_head(sock)
    assert status_of(head) == 403, head
    assert b"100 Continue" not in head + rest
