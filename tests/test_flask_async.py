"""Flask's async views through bridge, and asgiref's async_to_sync under greenlets."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from flask import Flask

import bridge
from bridge import AwaitError, GreenletExecutor, to_asgi
from tests.harness import FakeServer, make_scope

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Flask's stock path (asgiref) is asyncio-only


def make_app(*, through_bridge: bool) -> Flask:
    app = Flask(__name__)

    @app.get("/async")
    async def async_view() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"thread": threading.get_ident(), "loop": id(asyncio.get_running_loop())}

    return bridge.flask_async_views(app) if through_bridge else app


async def test_async_views_run_on_the_servers_own_loop(executor: str) -> None:
    app = to_asgi(make_app(through_bridge=True), executor=executor)
    exchange = await FakeServer(app).request(make_scope("/async"))
    assert exchange.status == 200
    answer = json.loads(exchange.body)
    assert answer["loop"] == id(asyncio.get_running_loop())
    assert answer["thread"] == threading.get_ident()


async def test_stock_async_views_work_under_the_thread_executor() -> None:
    exchange = await FakeServer(to_asgi(make_app(through_bridge=False))).request(
        make_scope("/async")
    )
    assert exchange.status == 200
    answer = json.loads(exchange.body)
    assert answer["loop"] != id(asyncio.get_running_loop())  # asgiref's own new loop


async def test_stock_async_views_under_greenlets_fail_naming_the_fix() -> None:
    app = make_app(through_bridge=False)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    exchange = await FakeServer(to_asgi(app, executor="greenlet")).request(make_scope("/async"))
    assert exchange.status == 500
    error = exchange.error  # PROPAGATE_EXCEPTIONS: it reaches the server, after the 500
    assert isinstance(error, AwaitError) and "asgiref=True" in str(error)


async def test_stock_async_views_under_greenlets_work_when_opted_in() -> None:
    executor = GreenletExecutor(asgiref=True)
    app = to_asgi(make_app(through_bridge=False), executor=executor)
    exchange = await FakeServer(app).request(make_scope("/async"))
    assert exchange.status == 200
    answer = json.loads(exchange.body)
    assert answer["loop"] == id(asyncio.get_running_loop())


def test_flask_async_views_under_a_wsgi_server_use_one_long_lived_loop() -> None:
    client = make_app(through_bridge=True).test_client()
    loops = {client.get("/async").get_json()["loop"] for _ in range(3)}
    assert len(loops) == 1


def test_flask_async_views_needs_a_flask_app() -> None:
    with pytest.raises(bridge.ConfigurationError):
        bridge.flask_async_views(object())


async def test_thread_loops_run_views_in_the_worker_on_a_reused_loop() -> None:
    pool = bridge.ThreadExecutor(max_workers=1)
    app = to_asgi(
        bridge.flask_async_views(make_app(through_bridge=False), loop="thread"), executor=pool
    )
    answers = [
        json.loads((await FakeServer(app).request(make_scope("/async"))).body) for _ in range(3)
    ]
    assert {a["thread"] for a in answers} != {threading.get_ident()}
    assert len({a["thread"] for a in answers}) == 1
    assert len({a["loop"] for a in answers}) == 1
    assert answers[0]["loop"] != id(asyncio.get_running_loop())


async def test_thread_loops_leave_greenlets_on_the_servers_loop() -> None:
    flask = bridge.flask_async_views(make_app(through_bridge=False), loop="thread")
    exchange = await FakeServer(to_asgi(flask, executor="greenlet")).request(make_scope("/async"))
    assert json.loads(exchange.body)["loop"] == id(asyncio.get_running_loop())


def test_the_loop_choice_is_checked() -> None:
    with pytest.raises(bridge.ConfigurationError, match="'server' or 'thread'"):
        bridge.flask_async_views(make_app(through_bridge=False), loop="other")
