"""A FastAPI app as an AWS Lambda function: set the handler to ``fastapi_handler.handler``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

import bridge

logging.getLogger().setLevel(logging.INFO)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    # Runs at the first invocation of each execution environment, not at import,
    # and its shutdown half runs when Lambda sends SIGTERM (see the Lambda page).
    pool = {"connections": 0}  # stand-in for a database pool
    yield {"pool": pool}
    pool.clear()


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, object]:
    request.state.pool["connections"] += 1
    return {"hello": "from FastAPI on Lambda", "uses": request.state.pool["connections"]}


@app.get("/event")
async def event(request: Request) -> dict[str, object]:
    return {"keys": sorted(request.scope["aws.event"])}


handler = bridge.aws_lambda(app)
