"""Apps for the command-line tests: a Flask (WSGI) app, a FastAPI (ASGI) app, a factory.

The FastAPI app records its lifespan in the file named by $BRIDGE_MARKS, one
line per event with the process id, so a test can see shutdown ran.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from flask import Flask, request, url_for


def _mark(text: str) -> None:
    marks = os.environ.get("BRIDGE_MARKS")
    if marks:
        with open(marks, "a") as file:
            file.write(f"{text} {os.getpid()}\n")


wsgi_app = Flask("cli_wsgi")


@wsgi_app.get("/")
def wsgi_index() -> Any:
    return {"kind": "wsgi", "script_root": request.script_root, "self": url_for("wsgi_index")}


async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    _mark("startup")
    yield
    _mark("shutdown")


asgi_app = FastAPI(lifespan=lifespan)


@asgi_app.get("/")
async def asgi_index(request: Request) -> dict[str, Any]:
    return {"kind": "asgi", "root_path": request.scope.get("root_path", ""), "pid": os.getpid()}


def create_app() -> Flask:
    """An app factory, for ``module:create_app()``."""
    return wsgi_app


def neither(*args: Any) -> None:
    """Takes any number of arguments: neither a WSGI nor an ASGI app, as far as one can tell."""


blocking_app = Flask("cli_blocking")


@blocking_app.route("/", methods=["GET", "HEAD", "POST"])
def blocking_index() -> Any:
    import time

    time.sleep(0.1)  # blocking I/O, as a database driver would do
    return {"read": len(request.get_data())}


@blocking_app.get("/broken")
def broken() -> Any:
    return {"ratio": 1 // 0}


asgiref_app = Flask("cli_asgiref")


@asgiref_app.get("/")
def asgiref_index() -> Any:
    from asgiref.sync import async_to_sync

    async def value() -> int:
        return 42

    return {"value": async_to_sync(value)()}
