"""A FastAPI app under to_wsgi that records its lifespan in the file $BRIDGE_MARKS."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request

import bridge


def _mark(text: str) -> None:
    with open(os.environ["BRIDGE_MARKS"], "a") as marks:
        marks.write(text + "\n")


async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    _mark("startup")
    yield {"greeting": "hello from lifespan"}
    _mark("shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}


@app.get("/where")
async def where() -> dict[str, int]:
    """The OS thread the loop runs in; the worker's main thread has the process id as its id."""
    return {"loop_thread": threading.get_native_id(), "pid": os.getpid()}


@app.get("/sync")
def sync_endpoint(request: Request) -> dict[str, str]:
    """A sync endpoint: FastAPI runs it in a worker thread of the loop (anyio)."""
    return {"greeting": request.state.greeting.upper()}


@app.post("/echo")
async def echo(request: Request) -> dict[str, str]:
    return {"body": (await request.body()).decode()}


wsgi = bridge.to_wsgi(app)
