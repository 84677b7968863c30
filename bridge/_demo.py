"""``bridge demo``: a small Flask app served by uvicorn through ``to_asgi``.

Flask and uvicorn come from the ``demo`` extra; they are imported only here.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

from ._await import await_
from ._errors import ConfigurationError
from ._to_asgi import WsgiToAsgi, to_asgi

_INDEX = """<!doctype html>
<title>bridge demo</title>
<h1>A Flask app, served by uvicorn through <code>bridge.to_asgi</code></h1>
<p>Executor: <b>{executor}</b>. Mounted at: <code>{root}</code></p>
<ul>
  <li><a href="{hello}">a plain sync view</a></li>
  <li><a href="{slow}">a sync view that awaits async code with <code>bridge.await_</code></a></li>
  <li><a href="{stream}">a streamed response</a> (chunks arrive one by one)</li>
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
        "waited": time.perf_counter() - started,
    }


def make_flask_app(executor: str) -> Any:
    from flask import Flask, Response, jsonify, request, url_for

    app = Flask("bridge_demo")

    @app.get("/")
    def index() -> str:
        return _INDEX.format(
            executor=executor,
            root=request.script_root or "/",
            hello=url_for("hello"),
            slow=url_for("slow"),
            stream=url_for("stream"),
            upload=url_for("upload"),
        )

    @app.get("/hello")
    def hello() -> Any:
        return jsonify(message="Hello from a sync Flask view", path=request.path)

    @app.get("/await")
    def slow() -> Any:
        return jsonify(await_(_fetch_quote(0.1)))

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


def demo_app(executor: str = "thread") -> WsgiToAsgi:
    return to_asgi(make_flask_app(executor), executor=executor)


def serve_demo(host: str, port: int, executor: str) -> None:
    import uvicorn

    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({error.strerror}); pick another with --port, "
            "or --port 0 for any free one"
        ) from error
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"bridge demo: a Flask app through bridge.to_asgi (executor={executor}) on uvicorn")
    print(f"bridge demo: open http://{shown}:{bound}/  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(demo_app(executor), log_level="info", lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])
