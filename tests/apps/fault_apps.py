"""Apps that misbehave on demand, for the fault-injection tests and the soak run.

Two apps with the same routes, one per direction:

* ``wsgi_routes`` (WSGI), served through ``to_asgi`` by uvicorn: ``asgi_app``,
  with the executor named by ``BRIDGE_FAULT_EXECUTOR`` (``thread``, the
  default, or ``greenlet``) and, if ``BRIDGE_FAULT_BODY_TIMEOUT`` is set,
  that ``body_timeout``.
* ``asgi_routes`` (ASGI), served through ``to_wsgi`` by waitress or gunicorn:
  ``wsgi_app``.

Routes: ``/ok``, ``POST /echo``, ``/stream?size=&delay=&token=``,
``POST /slow-read?delay=``, ``/hang?seconds=``, ``/gated?token=``, and
``/fault/<kind>`` for each kind in ``APP_FAULTS``. Waits go through the
event loop (``bridge.await_`` on the WSGI side), so the greenlet executor
never blocks its loop.

Each app sits behind a small dispatcher of the other interface that answers
``/_accounting`` (what the process holds now, as JSON), ``/_produced?token=``
(bytes a ``/stream`` made so far), ``/_release?token=`` (lets a ``/gated``
response go on) and ``/_sleep?seconds=`` (holds a server thread, or a task)
without entering the bridge, so asking never uses a worker.

``failing_lifespan_wsgi`` (to_wsgi) and ``failing_lifespan_asgi`` (fallback)
serve the same routes behind an ASGI app whose lifespan startup fails.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

import greenlet

import bridge
from bridge import GreenletExecutor, ThreadExecutor
from bridge._types import Receive, Scope, Send

CHUNK = 64 * 1024
BLOCK = b"x" * CHUNK
GATE_TIMEOUT = 5.0
STARTUP_FAILURE = "the database at db.invalid did not answer"
APP_FAULTS = (
    "raise-before-start",
    "raise-after-start",
    "raise-mid-body",
    "raise-in-close",
    "no-start",
    "unfinished",
)


class AppFault(RuntimeError):
    """What the misbehaving routes raise."""


# --- What the routes record ---------------------------------------------------------------

_lock = threading.Lock()
_produced: OrderedDict[str, int] = OrderedDict()
_gates: dict[str, asyncio.Event] = {}  # touched on the serving loop only


def _record(token: str, size: int) -> None:
    with _lock:
        _produced[token] = _produced.get(token, 0) + size
        while len(_produced) > 256:  # bounded: the soak makes thousands of tokens
            _produced.popitem(last=False)


def produced(token: str) -> int:
    with _lock:
        return _produced.get(token, 0)


def _gate(token: str) -> asyncio.Event:
    if len(_gates) > 256:
        _gates.clear()
    return _gates.setdefault(token, asyncio.Event())


async def _wait_gate(token: str) -> bool:
    try:
        await asyncio.wait_for(_gate(token).wait(), GATE_TIMEOUT)
    except asyncio.TimeoutError:
        return False
    finally:
        _gates.pop(token, None)
    return True


def release(token: str) -> None:
    _gate(token).set()


def _query(query_string: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(query_string).items()}


# --- The WSGI app (served through to_asgi) ------------------------------------------------


def _plain(start_response: Any, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class _FailingClose:
    """A complete response whose ``close()`` raises."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        raise AppFault("close() failed on purpose")


def _wsgi_stream(size: int, delay: float, token: str) -> Iterator[bytes]:
    while size > 0:
        piece = BLOCK[: min(size, CHUNK)]
        size -= len(piece)
        _record(token, len(piece))
        yield piece
        if delay:
            bridge.await_(asyncio.sleep(delay))


def _wsgi_fault(kind: str, start_response: Any) -> Iterable[bytes]:
    if kind == "raise-before-start":
        raise AppFault("before start_response")
    if kind == "raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise AppFault("after start_response")
    if kind == "raise-mid-body":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def broken() -> Iterator[bytes]:
            yield BLOCK
            raise AppFault("in the middle of the body")

        return broken()
    if kind == "raise-in-close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return _FailingClose(b"done")
    if kind == "no-start":
        return [b"a body with no start_response"]
    if kind == "unfinished":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return [b"only ten.."]
    return _plain(start_response, b"no such fault", "404 Not Found")


def wsgi_routes(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = _query(environ["QUERY_STRING"])
    if path == "/ok":
        return _plain(start_response, b"ok")
    if path == "/echo":
        body = b"".join(iter(lambda: environ["wsgi.input"].read(16384), b""))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        delay = float(query.get("delay", "0"))
        return _wsgi_stream(int(query["size"]), delay, query.get("token", ""))
    if path == "/slow-read":
        total, delay = 0, float(query.get("delay", "0.01"))
        while piece := environ["wsgi.input"].read(4096):
            total += len(piece)
            bridge.await_(asyncio.sleep(delay))
        return _plain(start_response, str(total).encode())
    if path == "/hang":
        bridge.await_(asyncio.sleep(float(query.get("seconds", "0.3"))))
        return _plain(start_response, b"late")
    if path == "/gated":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _wsgi_gated(query["token"])
    if path.startswith("/fault/"):
        return _wsgi_fault(path.removeprefix("/fault/"), start_response)
    return _plain(start_response, b"not found", "404 Not Found")


def _wsgi_gated(token: str) -> Iterator[bytes]:
    yield b"first\n"
    yield b"second\n" if bridge.await_(_wait_gate(token)) else b"gate timed out\n"


# --- The ASGI app (served through to_wsgi) ------------------------------------------------


async def _start(send: Any, status: int = 200, length: int | None = None) -> None:
    headers = [(b"content-type", b"text/plain")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _body(send: Any, body: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _asgi_plain(send: Any, body: bytes, status: int = 200) -> None:
    await _start(send, status, len(body))
    await _body(send, body)


async def _read_all(receive: Any, delay: float = 0.0) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise bridge.ClientDisconnected("the client left during the upload")
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)
        if delay:
            await asyncio.sleep(delay)


async def _asgi_fault(kind: str, send: Any) -> None:
    if kind == "raise-before-start":
        raise AppFault("before http.response.start")
    if kind == "raise-after-start":
        await _start(send)
        raise AppFault("after http.response.start")
    if kind == "raise-mid-body":
        await _start(send)
        await _body(send, BLOCK, more=True)
        raise AppFault("in the middle of the body")
    if kind == "raise-in-close":
        await _asgi_plain(send, b"done")
        raise AppFault("after the response was complete")
    if kind == "no-start":
        return
    if kind == "unfinished":
        await _start(send)
        await _body(send, b"only ten..", more=True)
        return
    await _asgi_plain(send, b"no such fault", 404)


async def asgi_routes(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise RuntimeError("this app has no lifespan")
    path = scope["path"]
    query = _query(scope["query_string"].decode("latin-1"))
    if path == "/ok":
        await _asgi_plain(send, b"ok")
    elif path == "/echo":
        body = await _read_all(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await _body(send, body)
    elif path == "/stream":
        size, delay, token = int(query["size"]), float(query.get("delay", "0")), query.get("token")
        await _start(send)
        while size > 0:
            piece = BLOCK[: min(size, CHUNK)]
            size -= len(piece)
            _record(token or "", len(piece))
            await _body(send, piece, more=size > 0)
            if delay:
                await asyncio.sleep(delay)
    elif path == "/slow-read":
        body = await _read_all(receive, float(query.get("delay", "0.01")))
        await _asgi_plain(send, str(len(body)).encode())
    elif path == "/hang":
        await asyncio.sleep(float(query.get("seconds", "0.3")))
        await _asgi_plain(send, b"late")
    elif path == "/gated":
        await _start(send)
        await _body(send, b"first\n", more=True)
        await _body(send, b"second\n" if await _wait_gate(query["token"]) else b"gate timed out\n")
    elif path.startswith("/fault/"):
        await _asgi_fault(path.removeprefix("/fault/"), send)
    else:
        await _asgi_plain(send, b"not found", 404)


async def _lifespan_fails(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI routes, with a lifespan startup that reports a failure."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": STARTUP_FAILURE})
        return
    await asgi_routes(scope, receive, send)


# --- Accounting ---------------------------------------------------------------------------


def accounting(pool: ThreadExecutor | None, heavy: bool, types: bool = False) -> dict[str, Any]:
    """What this process holds now.

    ``heavy`` adds a full collection, the count of objects it tracks and of
    live greenlets; ``types`` adds the objects counted by type name.
    """
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "threads": threading.active_count(),
        "pool_threads": pool.threads if pool is not None else 0,
        "pool_busy": pool.threads - pool.idle if pool is not None else 0,
        "fds": len(os.listdir("/proc/self/fd")),
        "rss": rss,
    }
    if heavy:
        gc.collect()
        objects = gc.get_objects()
        greenlets = [g for g in objects if isinstance(g, greenlet.greenlet) and not g.dead]
        report["objects"] = len(objects)
        report["greenlets"] = len(greenlets)
        report["greenlets_busy"] = sum(getattr(g, "job", None) is not None for g in greenlets)
        if types:
            report["types"] = dict(Counter(type(o).__qualname__ for o in objects))
        del objects, greenlets
    return report


def _json(data: object) -> tuple[bytes, list[tuple[str, str]]]:
    body = json.dumps(data).encode()
    return body, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]


class AccountingASGI:
    """ASGI dispatcher: answers the accounting routes on the server's loop, the rest to ``app``."""

    def __init__(self, app: Any, pool: ThreadExecutor | None) -> None:
        self.app = app
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/_"):
            await self.app(scope, receive, send)
            return
        query = _query(scope["query_string"].decode("latin-1"))
        data: object
        if path == "/_accounting":
            data = accounting(self.pool, query.get("heavy") == "1", "types" in query)
            data["tasks"] = len(asyncio.all_tasks()) - 1  # not counting this request
        elif path == "/_produced":
            data = {"bytes": produced(query["token"])}
        elif path == "/_sleep":
            await asyncio.sleep(float(query["seconds"]))
            data = {"slept": query["seconds"]}
        else:
            release(query["token"])
            data = {"released": query["token"]}
        body, headers = _json(data)
        raw = [(name.lower().encode(), value.encode()) for name, value in headers]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})


class AccountingWSGI:
    """WSGI dispatcher: answers the accounting routes in the server thread, the rest to ``app``."""

    def __init__(self, app: bridge.AsgiToWsgi) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if not path.startswith("/_"):
            return self.app(environ, start_response)
        query = _query(environ["QUERY_STRING"])
        loop = self.app.runner.loop
        data: object
        if path == "/_accounting":
            data = accounting(None, query.get("heavy") == "1", "types" in query)
            data["tasks"] = asyncio.run_coroutine_threadsafe(_count_tasks(), loop).result(5)
        elif path == "/_produced":
            data = {"bytes": produced(query["token"])}
        elif path == "/_sleep":
            time.sleep(float(query["seconds"]))  # holds this server thread, as a slow view does
            data = {"slept": query["seconds"]}
        else:
            loop.call_soon_threadsafe(release, query["token"])
            data = {"released": query["token"]}
        body, headers = _json(data)
        start_response("200 OK", headers)
        return [body]


async def _count_tasks() -> int:
    return len(asyncio.all_tasks()) - 1  # not counting this one


# --- What the servers load ----------------------------------------------------------------


def _executor() -> tuple[ThreadExecutor | GreenletExecutor, ThreadExecutor | None]:
    name = os.environ.get("BRIDGE_FAULT_EXECUTOR", "thread")
    if name == "greenlet":
        return GreenletExecutor(), None
    if name == "thread":
        pool = ThreadExecutor()
        return pool, pool
    raise SystemExit(f"BRIDGE_FAULT_EXECUTOR must be thread or greenlet, not {name!r}")


def _asgi_options() -> dict[str, Any]:
    """``to_asgi`` options from the environment: ``BRIDGE_FAULT_BODY_TIMEOUT`` (seconds)."""
    timeout = os.environ.get("BRIDGE_FAULT_BODY_TIMEOUT")
    return {} if timeout is None else {"body_timeout": float(timeout)}


_executor_in_use, _pool = _executor()
asgi_app = AccountingASGI(
    bridge.to_asgi(wsgi_routes, executor=_executor_in_use, **_asgi_options()), _pool
)
wsgi_app = AccountingWSGI(bridge.to_wsgi(asgi_routes))
failing_lifespan_wsgi = AccountingWSGI(bridge.to_wsgi(_lifespan_fails))
failing_lifespan_asgi = AccountingASGI(
    bridge.fallback(wsgi_routes, _lifespan_fails, executor=_executor_in_use), _pool
)
