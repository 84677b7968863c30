"""Quickstart: a plain sync Flask view calling async code with bridge.await_."""

import asyncio

from flask import Flask

import bridge


async def fetch_price(item: str) -> dict[str, object]:
    """Stands in for an async client call: httpx.AsyncClient, an async database driver."""
    await asyncio.sleep(0.01)
    return {"item": item, "price": 42}


flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> dict[str, object]:
    return bridge.await_(fetch_price("book"))  # suspends this request only


# No threads at all: each request runs in a greenlet on uvicorn's loop.
app = bridge.to_asgi(flask_app, executor="greenlet")
