"""to_wsgi in process: an ASGI app called the way a WSGI server calls it."""

from __future__ import annotations

import asyncio
import contextvars
import io
import threading
import time
import wsgiref.util
import wsgiref.validate
from collections.abc import Iterable
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse

import bridge
from bridge import to_wsgi

request_tag: contextvars.ContextVar[str] = contextvars.ContextVar("request_tag", default="unset")


def environ_for(
    path: str = "/", method: str = "GET", body: bytes = b"", **extra: Any
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(body),
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    wsgiref.util.setup_testing_defaults(environ)
    return environ


class Answer:
    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.calls = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status, self.headers = status, headers
        self.calls += 1
        return lambda data: None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


def call(app: Any, environ: dict[str, Any]) -> tuple[Answer, bytes]:
    """Call as a WSGI server would, through the stdlib validator (it checks both sides)."""
    answer = Answer()
    iterable: Iterable[bytes] = wsgiref.validate.validator(app)(environ, answer.start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return answer, body


def make_fastapi() -> FastAPI:
    events: list[str] = []

    async def lifespan(app: FastAPI) -> Any:
        events.append("startup")
        yield {"pool": "the pool"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.state.events = events

    @app.get("/hello")
    async def hello(request: Request) -> dict[str, Any]:
        return {
            "pool": request.state.pool,
            "tag": request_tag.get(),
            "root": request.scope["root_path"],
        }

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"length": len(body), "head": body[:5].decode()}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> Any:
            for index in range(3):
                yield f"part {index}\n"
                await asyncio.sleep(0)

        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    return app


@pytest.fixture(scope="module")
def fastapi_wsgi() -> Any:
    wsgi = to_wsgi(make_fastapi())
    yield wsgi
    wsgi.close()


def test_fastapi_with_lifespan_state(fastapi_wsgi: Any) -> None:
    token = request_tag.set("from the server thread")
    try:
        answer, body = call(fastapi_wsgi, environ_for("/hello"))
    finally:
        request_tag.reset(token)
    assert answer.status == "200 OK"
    assert b'"pool":"the pool"' in body
    assert b'"tag":"from the server thread"' in body
    assert fastapi_wsgi.app.state.events == ["startup"]


def test_post_body_streams_from_wsgi_input(fastapi_wsgi: Any) -> None:
    payload = b"hello" + b"x" * 200_000
    answer, body = call(fastapi_wsgi, environ_for("/echo", "POST", payload))
    assert answer.status == "200 OK"
    assert body == b'{"length":200005,"head":"hello"}'


def test_chunked_upload_without_length_reads_to_the_end(fastapi_wsgi: Any) -> None:
    environ = environ_for("/echo", "POST", **{"wsgi.input_terminated": True})
    environ["wsgi.input"] = io.BytesIO(b"abcdef" * 50_000)
    _, body = call(fastapi_wsgi, environ)
    assert body == b'{"length":300000,"head":"abcde"}'


def test_streaming_response_and_script_name(fastapi_wsgi: Any) -> None:
    answer, body = call(fastapi_wsgi, environ_for("/stream"))
    assert (answer.status, body) == ("200 OK", b"part 0\npart 1\npart 2\n")
    _, body = call(fastapi_wsgi, environ_for("/hello", SCRIPT_NAME="/api"))
    assert b'"root":"/api"' in body


def test_an_error_before_the_response_is_a_clean_500(fastapi_wsgi: Any) -> None:
    answer, body = call(fastapi_wsgi, environ_for("/boom"))
    assert answer.status.startswith("500")
    assert b"secret" not in body


def raw_app(*messages: dict[str, Any], raise_after: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        for message in messages:
            await send(message)
        if raise_after:
            raise KeyError("after")

    return app


START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}


def test_an_app_that_sends_nothing_gets_a_500_not_a_hang() -> None:
    answer, _body = call(to_wsgi(raw_app()), environ_for())
    assert answer.status.startswith("500")


def test_an_error_after_start_before_body_replaces_the_headers() -> None:
    answer, _body = call(to_wsgi(raw_app(START, raise_after=True)), environ_for())
    assert answer.status.startswith("500")
    assert answer.calls == 2


def test_an_error_after_a_body_chunk_reaches_the_server() -> None:
    chunk = {"type": "http.response.body", "body": b"partial", "more_body": True}
    with pytest.raises(KeyError, match="after"):
        call(to_wsgi(raw_app(START, chunk, raise_after=True)), environ_for())


@pytest.mark.parametrize("value", [b"a\r\nSet-Cookie: evil=1", b"a\x00b"])
def test_invalid_headers_never_reach_the_server(value: bytes) -> None:
    bad = {"type": "http.response.start", "status": 200, "headers": [(b"x-evil", value)]}
    answer, _body = call(to_wsgi(raw_app(bad)), environ_for())
    assert answer.status.startswith("500")
    assert all("evil" not in v for _, v in answer.headers)


def test_closing_early_makes_the_apps_receive_say_disconnect() -> None:
    seen: list[str] = []
    finished = threading.Event()

    async def endless(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        await send(START)
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        except bridge.ClientDisconnected:
            seen.append((await receive())["type"])
        finally:
            finished.set()

    answer = Answer()
    iterable = to_wsgi(endless)(environ_for(), answer.start_response)
    iterator = iter(iterable)
    assert next(iterator) == b"x" * 1024
    iterable.close()  # type: ignore[attr-defined]
    assert finished.wait(5)
    assert seen == ["http.disconnect"]


def test_a_failing_startup_answers_500_with_the_cause_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def lifespan(app: FastAPI) -> Any:
        raise RuntimeError("no database")
        yield

    wsgi = to_wsgi(FastAPI(lifespan=lifespan))
    answer, _body = call(wsgi, environ_for("/"))
    assert answer.status.startswith("500")
    assert any("no database" in r.getMessage() for r in caplog.records)


def test_non_utf8_path_is_a_400() -> None:
    answer, _body = call(to_wsgi(raw_app()), environ_for("/\xff"))
    assert answer.status.startswith("400")


def test_values_an_app_sets_do_not_leak_into_the_next_request() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        seen.append(request_tag.get())
        request_tag.set(scope["path"])
        await send(START)
        await send({"type": "http.response.body", "body": b"ok"})

    wsgi = to_wsgi(app)
    token = request_tag.set("the server's")
    try:
        call(wsgi, environ_for("/first"))
        call(wsgi, environ_for("/second"))
    finally:
        request_tag.reset(token)
    assert seen == ["the server's", "the server's"]


def test_the_worker_is_freed_at_the_last_chunk_while_background_work_goes_on() -> None:
    done = threading.Event()
    api = FastAPI()

    async def later() -> None:
        await asyncio.sleep(0.3)
        done.set()

    @api.get("/")
    async def index(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(later)
        return {"ok": "yes"}

    wsgi = to_wsgi(api)
    started = time.monotonic()
    answer, body = call(wsgi, environ_for("/"))
    assert (answer.status, body) == ("200 OK", b'{"ok":"yes"}')
    assert time.monotonic() - started < 0.25
    assert not done.is_set()
    assert done.wait(5)


def test_a_failing_wsgi_input_releases_the_app() -> None:
    released = threading.Event()

    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("client gone mid-upload")

    async def reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            released.set()

    environ = environ_for("/", "POST", b"x" * 10)
    environ["wsgi.input"] = Broken()
    with pytest.raises(OSError, match="mid-upload"):
        to_wsgi(reader)(environ, Answer().start_response)
    assert released.wait(5)
