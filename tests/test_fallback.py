"""fallback: routes move to the new app one at a time; the rest reach the legacy app."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from flask import Flask, redirect, request, url_for
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import bridge
from bridge._types import Message, Receive, Scope, Send
from tests.harness import FakeServer, make_scope


def make_legacy(calls: list[str]) -> Flask:
    legacy = Flask("legacy")

    @legacy.route("/old", methods=["GET", "POST"])
    def old() -> Any:
        calls.append(request.path)
        return {"from": "flask", "length": len(request.get_data()), "method": request.method}

    @legacy.get("/items/<int:number>")
    def item(number: int) -> Any:
        calls.append(request.path)
        return {"from": "flask", "item": number}

    @legacy.get("/login")
    def login() -> Any:
        response = redirect(url_for("old"))
        response.set_cookie("session", "legacy-cookie")
        return response

    return legacy


def make_new() -> FastAPI:
    api = FastAPI(title="new")

    @api.get("/new")
    async def new() -> dict[str, str]:
        return {"from": "fastapi"}

    @api.get("/items/{number}")
    async def item(number: int) -> dict[str, int]:
        if number > 10:
            raise HTTPException(404, "no such item")  # matched: must not fall through
        return {"item": number}

    @api.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for number in range(3):
                yield f"part {number}\n".encode()

        return StreamingResponse(parts())

    @api.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("fastapi socket")
        await websocket.close()

    return api


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def client(calls: list[str]) -> Iterator[TestClient]:
    with TestClient(bridge.fallback(make_new(), make_legacy(calls))) as client:
        yield client


def test_each_route_is_answered_by_the_app_that_has_it(
    client: TestClient, calls: list[str]
) -> None:
    assert client.get("/new").json() == {"from": "fastapi"}
    assert client.get("/old").json() == {"from": "flask", "length": 0, "method": "GET"}
    assert client.get("/items/3").json() == {"item": 3}
    assert calls == ["/old"]


def test_an_endpoint_that_answers_404_itself_is_not_run_elsewhere(
    client: TestClient, calls: list[str]
) -> None:
    answer = client.get("/items/11")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no such item"}
    assert calls == []


def test_a_path_no_app_has_gets_the_last_apps_404(client: TestClient) -> None:
    answer = client.get("/nowhere")
    assert answer.status_code == 404
    assert b"Not Found" in answer.content  # Flask's page, not FastAPI's JSON
    assert "application/json" not in answer.headers["content-type"]


def test_bodies_streams_cookies_and_redirects_cross_intact(client: TestClient) -> None:
    body = b"x" * 200_000
    assert client.post("/old", content=body).json()["length"] == len(body)
    assert client.post("/upload", content=body).json() == {"length": len(body)}
    assert client.get("/stream").text == "part 0\npart 1\npart 2\n"
    answer = client.get("/login", follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"] == "/old"
    assert answer.cookies["session"] == "legacy-cookie"


def test_websockets_follow_the_same_routing(client: TestClient) -> None:
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "fastapi socket"


async def websocket_echo(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": f"echo {scope['path']}"})
    await send({"type": "websocket.close", "code": 1000})


def test_a_websocket_with_no_route_in_front_reaches_the_next_app() -> None:
    with (
        TestClient(bridge.fallback(make_new(), websocket_echo)) as client,
        client.websocket_connect("/legacy-socket") as socket,
    ):
        assert socket.receive_text() == "echo /legacy-socket"


def test_a_wsgi_app_declines_websockets_by_closing_them(calls: list[str]) -> None:
    with (
        TestClient(bridge.fallback(make_legacy(calls), websocket_echo)) as client,
        client.websocket_connect("/socket") as socket,
    ):
        assert socket.receive_text() == "echo /socket"


class Frame(dict[str, Any]):
    """A received websocket message that a test can watch for being freed."""


class Live:
    """How many frames handed to the app are still alive."""

    def __init__(self) -> None:
        self.count = 0

    def watch(self, frame: Frame) -> Frame:
        self.count += 1
        weakref.finalize(frame, self._freed)
        return frame

    def _freed(self) -> None:
        self.count -= 1


def websocket_scope(path: str) -> Scope:
    return {**make_scope(path), "type": "websocket", "scheme": "ws", "subprotocols": []}


def websocket_client(frames: int, size: int, live: Live) -> Receive:
    """Connect, then ``frames`` text frames of ``size`` characters, then leave."""
    left = frames

    async def receive() -> Message:
        nonlocal left
        if left == frames:
            left -= 1
            return {"type": "websocket.connect"}
        if left < 0:
            return {"type": "websocket.disconnect", "code": 1000}
        left -= 1
        return live.watch(Frame(type="websocket.receive", text="x" * size))

    return receive


async def counting_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts, then answers each frame with how many received frames are still alive."""
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": str(scope["live"].count)})
        del message


def make_counting_api() -> FastAPI:
    api = FastAPI()

    @api.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        async for _ in websocket.iter_text():
            await websocket.send_text(str(websocket.scope["live"].count))

    return api


@pytest.mark.parametrize("front", ["router hook", "statuses"])
@pytest.mark.anyio
async def test_an_accepted_websocket_keeps_nothing_for_replay(front: str) -> None:
    gc.disable()  # what is dropped must go by reference counting
    try:
        live = Live()
        first = make_counting_api() if front == "router hook" else counting_echo
        app = bridge.fallback(first, websocket_echo, replay_limit=65536)
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {**websocket_scope("/ws"), "live": live}
        await app(scope, websocket_client(2000, 4096, live), send)
    finally:
        gc.enable()
    assert sent[0]["type"] == "websocket.accept"
    counts = [int(message["text"]) for message in sent if message["type"] == "websocket.send"]
    assert len(counts) == 2000
    assert max(counts) <= 2  # the frame in hand, at most one more: 8 MB were kept before


@pytest.mark.anyio
async def test_websocket_frames_count_against_the_replay_limit() -> None:
    reached: list[str] = []

    async def reads_then_closes(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(4):  # the connect and three 64-character frames: over the limit
            await receive()
        await send({"type": "websocket.close", "code": 1000})

    async def second(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await websocket_echo(scope, receive, send)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    app = bridge.fallback(reads_then_closes, second, replay_limit=100)
    await app(websocket_scope("/ws"), websocket_client(3, 64, Live()), send)
    # It read what cannot be replayed, so its close stands, as a 404 would.
    assert sent == [{"type": "websocket.close", "code": 1000}]
    assert reached == []


def test_an_app_served_on_its_own_keeps_its_404(calls: list[str]) -> None:
    api = make_new()
    bridge.fallback(api, make_legacy(calls))  # installs the hook on api's router
    with TestClient(api) as client:
        answer = client.get("/old")
    assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
    assert calls == []


def test_middleware_that_wants_a_response_does_not_leak_a_500(calls: list[str]) -> None:
    api = make_new()

    async def passthrough(request: Request, call_next: Any) -> Any:
        return await call_next(request)

    api.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    with TestClient(bridge.fallback(api, make_legacy(calls))) as client:
        assert client.get("/old").json()["from"] == "flask"
        assert client.get("/new").json() == {"from": "fastapi"}


def not_found_app(read: int) -> Any:
    """A raw ASGI app that reads ``read`` body messages, then answers 404 with a header."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(read):
            await receive()
        await send(
            {"type": "http.response.start", "status": 404, "headers": [(b"x-first", b"yes")]}
        )
        await send({"type": "http.response.body", "body": b"first app's 404"})

    return app


async def echo_body(scope: Scope, receive: Receive, send: Send) -> None:
    received = b""
    more = True
    while more:
        message = await receive()
        received += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": received})


def chunks(count: int, size: int) -> Iterator[bytes]:
    for number in range(count):
        yield bytes([65 + number]) * size


@pytest.mark.anyio
async def test_by_status_the_body_read_so_far_is_replayed_to_the_next_app() -> None:
    app = bridge.fallback(not_found_app(read=2), echo_body)
    answer = await FakeServer(app, chunks(4, 1000)).request(make_scope(method="POST"))
    assert answer.status == 200
    assert answer.body == b"A" * 1000 + b"B" * 1000 + b"C" * 1000 + b"D" * 1000
    assert answer.headers == []  # nothing of the first app's answer, headers included


@pytest.mark.anyio
async def test_past_the_replay_limit_the_first_apps_answer_stands() -> None:
    app = bridge.fallback(not_found_app(read=3), echo_body, replay_limit=2500)
    answer = await FakeServer(app, chunks(4, 1000)).request(make_scope(method="POST"))
    assert answer.status == 404
    assert answer.body == b"first app's 404"
    assert answer.header(b"x-first") == b"yes"


def test_other_statuses_can_mean_no_route() -> None:
    async def gone(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 410, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(bridge.fallback(gone, echo_body, statuses={404, 410})) as client:
        assert client.post("/", content=b"kept").content == b"kept"


def test_three_apps_and_a_log_line_per_request_passed_on(
    calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    app = bridge.fallback(
        make_new(), not_found_app(read=0), make_legacy(calls), log_fallthrough=True
    )
    with caplog.at_level(logging.INFO, logger="bridge.fallback"), TestClient(app) as client:
        assert client.get("/old").json()["from"] == "flask"
        assert client.get("/new").json() == {"from": "fastapi"}
    passed_on = [r.getMessage() for r in caplog.records if r.name == "bridge.fallback"]
    assert passed_on == [
        "GET /old: no route in app 0 (FastAPI 'new'), passed on",
        "GET /old: no route in app 1 (not_found_app.<locals>.app), passed on",
    ]


def test_wsgi_apps_are_wrapped_with_the_chosen_executor(calls: list[str]) -> None:
    app = bridge.fallback(make_new(), make_legacy(calls), executor="greenlet")
    assert repr(app.members[1].app) == "to_asgi(<Flask 'legacy'>, executor='greenlet')"
    with TestClient(app) as client:
        assert client.get("/old").json()["from"] == "flask"


def test_an_app_of_unknown_kind_is_refused_with_the_fix() -> None:
    with pytest.raises(bridge.ConfigurationError, match="--interface"):
        bridge.fallback(make_new(), lambda *args: None)
    with pytest.raises(bridge.ConfigurationError, match="at least one"):
        bridge.fallback()


def lifespan_app(name: str, marks: list[str], fail: bool = False) -> FastAPI:
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        marks.append(f"{name} startup")
        if fail:
            raise RuntimeError(f"{name} cannot reach its database")
        yield {name: "ready"}
        marks.append(f"{name} shutdown")

    api = FastAPI(title=name, lifespan=lifespan)

    @api.get(f"/{name}")
    async def state(request: Request) -> dict[str, str]:
        return {name: getattr(request.state, name)}

    return api


def test_lifespan_reaches_every_app_and_shuts_down_in_reverse(calls: list[str]) -> None:
    marks: list[str] = []
    legacy = make_legacy(calls)
    app = bridge.fallback(lifespan_app("one", marks), lifespan_app("two", marks), legacy)
    with TestClient(app) as client:
        assert client.get("/one").json() == {"one": "ready"}
        assert client.get("/two").json() == {"two": "ready"}
        assert client.get("/old").json()["from"] == "flask"
    assert marks == ["one startup", "two startup", "two shutdown", "one shutdown"]


def test_a_failed_startup_names_the_app_and_shuts_down_the_started_ones() -> None:
    marks: list[str] = []
    app = bridge.fallback(lifespan_app("one", marks), lifespan_app("two", marks, fail=True))
    with pytest.raises(bridge.LifespanFailed) as failure, TestClient(app):
        pass
    assert "app 1 (FastAPI 'two')" in str(failure.value)
    assert "two cannot reach its database" in str(failure.value)
    assert marks == ["one startup", "two startup", "one shutdown"]
