"""The same small HTTP surface as a FastAPI app and as a Flask app, for the Lambda tests.

Routes: ``/echo`` (what the app saw), ``/cookies`` (two Set-Cookie and a
repeated header), ``/binary`` (PNG bytes), ``/gzip`` (compressed text),
``/empty`` (204), ``/stream`` (a body in several chunks), ``/big`` (``n``
bytes), ``/where`` (``url_for`` and a redirect), ``/state`` (start-up state).
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import flask
from fastapi import FastAPI, Request
from fastapi.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\x01"
GZIPPED = gzip.compress(b"hello, compressed world\n" * 4, mtime=0)
COOKIES = ("session=abc; Path=/; HttpOnly", "theme=dark; Path=/")


def asgi_app(events: list[str] | None = None) -> FastAPI:
    """FastAPI; ``events`` records lifespan start-up and shutdown when given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if events is not None:
            events.append("startup")
        yield {"started": len(events or ())}
        if events is not None:
            events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.api_route("/echo", methods=["GET", "POST", "PUT"])
    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT"])
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "root_path": request.scope.get("root_path", ""),
                "query": sorted(request.query_params.multi_items()),
                "headers": sorted(
                    [name, value]
                    for name, value in request.headers.items()
                    if name.startswith("x-") and name != "x-forwarded-for"
                ),
                "cookies": dict(request.cookies),
                "body": body.decode("latin-1"),
                "client": request.client.host if request.client else None,
                "url": str(request.url),
            }
        )

    @app.get("/cookies")
    async def cookies() -> Response:
        headers = [(b"set-cookie", cookie.encode()) for cookie in COOKIES]
        headers += [(b"x-tag", b"one"), (b"x-tag", b"two"), (b"content-type", b"text/plain")]
        response = Response(b"cookies set")
        response.raw_headers = [*headers, (b"content-length", b"11")]
        return response

    @app.get("/binary")
    async def binary() -> Response:
        return Response(PNG, media_type="image/png")

    @app.get("/gzip")
    async def compressed() -> Response:
        return Response(GZIPPED, media_type="text/plain", headers={"content-encoding": "gzip"})

    @app.get("/empty")
    async def empty() -> Response:
        return Response(status_code=204)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(5):
                yield f"chunk {number}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/big")
    async def big(n: int) -> PlainTextResponse:
        return PlainTextResponse("x" * n)

    @app.get("/where", name="where")
    async def where(request: Request) -> JSONResponse:
        return JSONResponse({"url_for": str(request.url_for("where"))})

    @app.get("/go")
    async def go(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url_for("where")))

    @app.get("/state")
    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"started": request.state.started})

    @app.get("/aws")
    async def aws(request: Request) -> JSONResponse:
        event = request.scope["aws.event"]
        context = request.scope["aws.context"]
        return JSONResponse({"keys": sorted(event), "request_id": context.aws_request_id})

    return app


def wsgi_app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/echo", methods=["GET", "POST", "PUT"])
    @app.route("/echo/<path:rest>", methods=["GET", "POST", "PUT"])
    def echo(rest: str = "") -> Any:
        request = flask.request
        return {
            "method": request.method,
            "path": request.path,
            "root_path": request.script_root,
            "query": sorted(request.args.items(multi=True)),
            "headers": sorted(
                [name.lower(), value]
                for name, value in request.headers.items()
                if name.lower().startswith("x-") and name.lower() != "x-forwarded-for"
            ),
            "cookies": dict(request.cookies),
            "body": request.get_data().decode("latin-1"),
            "client": request.remote_addr,
            "url": request.url,
        }

    @app.get("/cookies")
    def cookies() -> flask.Response:
        response = flask.Response(b"cookies set", content_type="text/plain")
        for cookie in COOKIES:
            response.headers.add("Set-Cookie", cookie)
        response.headers.add("X-Tag", "one")
        response.headers.add("X-Tag", "two")
        return response

    @app.get("/binary")
    def binary() -> flask.Response:
        return flask.Response(PNG, content_type="image/png")

    @app.get("/gzip")
    def compressed() -> flask.Response:
        response = flask.Response(GZIPPED, content_type="text/plain")
        response.headers["Content-Encoding"] = "gzip"
        return response

    @app.get("/empty")
    def empty() -> flask.Response:
        return flask.Response(status=204)

    @app.get("/stream")
    def stream() -> flask.Response:
        def chunks() -> Iterator[bytes]:
            for number in range(5):
                yield f"chunk {number}\n".encode()

        return flask.Response(chunks(), content_type="text/plain")

    @app.get("/big")
    def big() -> flask.Response:
        return flask.Response("x" * int(flask.request.args["n"]), content_type="text/plain")

    @app.get("/where")
    def where() -> Any:
        return {"url_for": flask.url_for("where", _external=True)}

    @app.get("/go")
    def go() -> flask.Response:
        return flask.redirect(flask.url_for("where"))

    @app.get("/state")
    def state() -> Any:
        return {"started": flask.request.environ["bridge.state"].get("started")}

    @app.get("/aws")
    def aws() -> Any:
        event = flask.request.environ["aws.event"]
        context = flask.request.environ["aws.context"]
        return {"keys": sorted(event), "request_id": context.aws_request_id}

    return app
