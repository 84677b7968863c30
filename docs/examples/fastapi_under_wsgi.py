"""Quickstart: a FastAPI app, with lifespan state, served by a WSGI server."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

import bridge


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
    # Made once per process, on the bridge's loop, before the first request.
    yield {"pool": "a connection pool"}
    # Runs when the server stops the worker (SIGTERM, Ctrl-C).


api = FastAPI(lifespan=lifespan)


@api.get("/")
async def index(request: Request) -> dict[str, str]:
    return {"hello": "from FastAPI", "pool": request.state.pool}


wsgi = bridge.to_wsgi(api)  # waitress-serve docs.examples.fastapi_under_wsgi:wsgi
