"""``bridge demo``: the three uses at once, on uvicorn.

A FastAPI app (the new code) with a legacy Flask app mounted under
``/legacy``, and ``fallback`` sending every path FastAPI has no route for to
the same Flask app at the root, as in a route-by-route migration. Flask runs
under the greenlet executor by default; one of its sync views calls async
code through ``await_``. FastAPI, Flask and uvicorn come from the ``demo``
extra and are imported only here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from ._await import await_
from ._fallback import Fallback, fallback
from ._serve import listen, url_of
from ._to_asgi import to_asgi

_INDEX = """<!doctype html>
<title>bridge demo</title>
<h1>bridge demo</h1>
<p>One uvicorn server. The new code is a FastAPI app; the old code is a Flask app
run by <code>bridge.to_asgi</code> with the <b>{executor}</b> executor.</p>
<h2>Mounted: Flask under FastAPI</h2>
<ul>
  <li><a href="/legacy/">/legacy/</a>: the Flask app's own index, mounted with
      <code>fastapi_app.mount("/legacy", bridge.to_asgi(flask_app))</code>;
      its <code>url_for</code> links and redirects carry <code>/legacy</code></li>
  <li><a href="/legacy/await">/legacy/await</a>: a plain sync Flask view calling async
      code with <code>bridge.await_</code></li>
  <li><a href="/legacy/stream">/legacy/stream</a>: a streamed response, chunk by chunk</li>
  <li><a href="/legacy/go-home">/legacy/go-home</a>: a redirect made with <code>url_for</code></li>
</ul>
<h2>Fallback: one URL space, route by route</h2>
<ul>
  <li><a href="/api/quote">/api/quote</a>: a route already moved to FastAPI</li>
  <li><a href="/hello">/hello</a>: no FastAPI route, so <code>bridge.fallback</code>
      passes it to Flask (the server log says so)</li>
  <li><a href="/items/7">/items/7</a> and <a href="/items/99">/items/99</a>: FastAPI's
      own 404 for a missing item stands; it is not sent on to Flask</li>
</ul>
"""

_FLASK_INDEX = """<!doctype html>
<title>legacy Flask app</title>
<h1>The legacy Flask app</h1>
<p>Served at <code>{root}</code>; executor <b>{executor}</b>.</p>
<ul>
  <li><a href="{hello}">a plain sync view</a></li>
  <li><a href="{slow}">a sync view that awaits async code with <code>bridge.await_</code></a></li>
  <li><a href="{stream}">a streamed response</a></li>
  <li><form method="post" action="{upload}" enctype="multipart/form-data">
      an upload, read by Flask from the streamed <code>wsgi.input</code>:
      <input type="file" name="file"> <button>send</button></form></li>
</ul>
"""


async def _fetch_quote(delay: float) -> dict[str, Any]:
    """Stands in for an async client call (httpx, an async database driver)."""
    started = time.perf_counter()
    await asyncio.sleep(delay)
    return {
        "quote": "Make it work, make it right, make it fast.",
        "waited": round(time.perf_counter() - started, 3),
    }


def make_flask_app(executor: str) -> Any:
    from flask import Flask, Response, jsonify, redirect, request, url_for

    app = Flask("bridge_demo")

    @app.get("/")
    def index() -> str:
        return _FLASK_INDEX.format(
            executor=executor,
            root=request.script_root or "/",
            hello=url_for("hello"),
            slow=url_for("slow"),
            stream=url_for("stream"),
            upload=url_for("upload"),
        )

    @app.get("/hello")
    def hello() -> Any:
        return jsonify(message="Hello from a sync Flask view", script_root=request.script_root)

    @app.get("/await")
    def slow() -> Any:
        return jsonify(await_(_fetch_quote(0.1)))

    @app.get("/go-home")
    def go_home() -> Any:
        return redirect(url_for("index"))

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for number in range(1, 6):
                yield f"chunk {number} of 5\n"
                time.sleep(0.2) if executor == "thread" else await_(asyncio.sleep(0.2))

        return Response(chunks(), mimetype="text/plain")

    @app.post("/upload")
    def upload() -> Any:
        sizes = {name: len(part.read()) for name, part in request.files.items()}
        return jsonify(received=sizes)

    return app


def demo_app(executor: str = "greenlet") -> Fallback:
    """The demo's one ASGI app: FastAPI first, the legacy Flask app behind it."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    legacy = make_flask_app(executor)
    api = FastAPI(title="bridge demo")

    @api.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return _INDEX.format(executor=executor)

    @api.get("/api/quote")
    async def quote() -> dict[str, Any]:
        return await _fetch_quote(0.05)

    @api.get("/items/{number}")
    async def item(number: int) -> dict[str, int]:
        if number > 10:
            raise HTTPException(404, f"no item {number}")
        return {"item": number}

    api.mount("/legacy", to_asgi(legacy, executor=executor))
    return fallback(api, legacy, executor=executor, log_fallthrough=True)


def serve_demo(host: str, port: int, executor: str) -> None:
    import uvicorn

    listener = listen(host, port)
    print("bridge demo: FastAPI + a legacy Flask app (mounted and as fallback) on uvicorn")
    print(f"bridge demo: open {url_of(listener)}  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(demo_app(executor), log_level="info", lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])
