"""A chunked request body whose end the WSGI server hides is a 411, never an empty body.

uWSGI 2.0 hands WSGI apps a chunked body as empty input, with no CONTENT_LENGTH
and no ``wsgi.input_terminated`` (issue 13, item 6); under its own HTTP parser
``uwsgi.chunked_read()`` reads it, and bridge reads it that way.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest

from bridge import to_wsgi
from tests.servers import HOST, free_port

called: list[bytes] = []


async def echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    message = await receive()
    called.append(message["body"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"got " + message["body"]})


def chunked_environ(body: bytes, **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        **extra,
    }
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def serve(environ: dict[str, Any]) -> tuple[str, bytes]:
    statuses: list[str] = []
    body = b"".join(
        to_wsgi(echo)(environ, lambda status, headers, exc_info=None: statuses.append(status))
    )
    return statuses[-1], body


@pytest.mark.parametrize(
    ("server_key", "setting"),
    [
        ("uwsgi.version", "--wsgi-manage-chunked-input"),
        ("mod_wsgi.version", "WSGIChunkedRequest On"),
        ("other.server", "chunked-input setting"),
    ],
)
def test_a_chunked_body_without_an_end_is_a_411_naming_the_setting(
    server_key: str, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    called.clear()
    status, body = serve(chunked_environ(b"", **{server_key: "1"}))
    assert status == "411 Length Required"
    assert b"Content-Length" in body
    assert called == []  # the app never saw an empty body
    assert any(setting in r.getMessage() for r in caplog.records if r.name == "bridge")


class FakeUwsgi:
    """``uwsgi.chunked_read`` as uWSGI's HTTP parser serves it, or as it fails elsewhere."""

    def __init__(self, chunks: list[bytes] | None) -> None:
        self.chunks = chunks
        self.reads = 0

    def chunked_read(self, timeout: int = 0) -> bytes:
        self.reads += 1
        if self.chunks is None:
            raise OSError("unable to receive chunked part")
        return self.chunks.pop(0) if self.chunks else b""


def test_under_uwsgis_http_parser_the_chunked_body_is_read_chunk_by_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uwsgi = FakeUwsgi([b"hel", b"lo ", b"world"])
    monkeypatch.setitem(sys.modules, "uwsgi", uwsgi)
    status, body = serve(chunked_environ(b"", **{"uwsgi.version": "2.0.31"}))
    assert (status, body) == ("200 OK", b"got hello world")
    assert uwsgi.reads == 4  # three chunks and the end


def test_where_uwsgi_cannot_read_chunks_it_is_still_a_411(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    called.clear()
    monkeypatch.setitem(sys.modules, "uwsgi", FakeUwsgi(None))
    status, _ = serve(chunked_environ(b"", **{"uwsgi.version": "2.0.31"}))
    assert status == "411 Length Required"
    assert called == []
    assert any("--http-socket" in r.getMessage() for r in caplog.records if r.name == "bridge")


def test_a_chunked_body_the_server_terminates_is_read() -> None:
    status, body = serve(chunked_environ(b"hello", **{"wsgi.input_terminated": True}))
    assert (status, body) == ("200 OK", b"got hello")


def test_a_body_with_content_length_is_read_whatever_transfer_encoding_says() -> None:
    status, body = serve(chunked_environ(b"hello", CONTENT_LENGTH="5"))
    assert (status, body) == ("200 OK", b"got hello")


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:  # uWSGI may reset after answering an unread body
                break
            if not data:
                break
            answer += data
    return answer


def test_uwsgi_http_socket_passes_a_chunked_upload_to_the_app(tmp_path: Path) -> None:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("uwsgi")),
        "--http-socket",
        f"{HOST}:{port}",
        "--module",
        "tests.apps.lifespan_fastapi:wsgi",
        "--master",
        "--processes",
        "1",
        "--threads",
        "2",
        "--need-app",
        "--die-on-term",
        "--disable-logging",
    ]
    environment = {**os.environ, "BRIDGE_MARKS": str(tmp_path / "marks")}
    log = tmp_path / "uwsgi.log"
    with log.open("wb") as errors:
        process = subprocess.Popen(
            command, env=environment, cwd=Path(__file__).parent.parent, stderr=errors
        )
    try:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        deadline = time.monotonic() + 15
        sized = b""
        while time.monotonic() < deadline and process.poll() is None and not sized:
            try:
                sized = _raw_request(port, head + b"Content-Length: 5\r\n\r\nhello")
            except OSError:  # noqa: PERF203 (a bounded start-up poll)
                time.sleep(0.05)
        assert sized.startswith(b"HTTP/1.1 200"), sized
        assert sized.endswith(b'{"body":"hello"}')
        chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        chunked = _raw_request(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    assert chunked.startswith(b"HTTP/1.1 200"), chunked
    assert chunked.endswith(b'{"body":"hello world"}'), chunked
    assert b"411" not in log.read_bytes()
