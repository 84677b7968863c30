"""Parts 1 and 4: adapters driven in-process by a fake ASGI server, no sockets at all.

The fake server builds a fresh scope per request; ``receive()`` gives the
(empty) body once and then waits forever on an event that is never set, as a
real server does until the client leaves; ``send()`` keeps only the status.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import apps

FLOOR_WSGI = "raw WSGI (floor)"
FLOOR_ASGI = "raw ASGI (floor)"
CONCURRENCY = 32


@dataclass(frozen=True)
class InProcessSettings:
    requests: int  # per repeat, at most
    budget: float  # seconds per repeat, at most
    repeats: int
    await_requests: int
    await_repeats: int
    await_timeout: float


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


class FakeServer:
    """Runs one request through an ASGI app; must be created inside the running loop."""

    def __init__(self) -> None:
        self.never = asyncio.Event()

    async def request(self, app: apps.ASGIApp, body: list[bytes] | None = None) -> int:
        """The response status; the body chunks go to ``body`` when given."""
        status = 0
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.never.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif body is not None:
                body.append(message.get("body", b""))

        await app(_scope(), receive, send)
        return status


# --- Part 1 ---------------------------------------------------------------------------------


def _wsgi_floor_us(settings: InProcessSettings) -> float:
    """Calling the WSGI app directly: a prebuilt environ, a trivial start_response."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "127.0.0.1"}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        return None

    def one_repeat() -> float:
        start = time.perf_counter()
        done = 0
        while done < settings.requests and time.perf_counter() - start < settings.budget:
            for _ in apps.hello_app(environ, start_response):
                pass
            done += 1
        return (time.perf_counter() - start) / done * 1e6

    one_repeat()  # warm-up
    return min(one_repeat() for _ in range(settings.repeats))


async def _per_request_us(
    batch: Callable[[], Coroutine[Any, Any, Any]], width: int, settings: InProcessSettings
) -> float:
    gc.collect()
    start = time.perf_counter()
    done = 0
    while done < settings.requests and time.perf_counter() - start < settings.budget:
        await batch()
        done += width
    return (time.perf_counter() - start) / done * 1e6


async def _check(server: FakeServer, name: str, app: apps.ASGIApp) -> None:
    body: list[bytes] = []
    status = await server.request(app, body)
    if status != 200 or b"".join(body) != apps.HELLO_BODY:
        raise RuntimeError(f"{name}: got {status} {b''.join(body)[:80]!r}")


async def _measure(
    server: FakeServer, name: str, app: apps.ASGIApp, settings: InProcessSettings
) -> dict[str, float]:
    await _check(server, name, app)

    async def sequential() -> None:
        await server.request(app)

    async def concurrent() -> None:
        await asyncio.gather(*(server.request(app) for _ in range(CONCURRENCY)))

    result = {}
    for mode, batch, width in (
        ("sequential", sequential, 1),
        ("concurrent", concurrent, CONCURRENCY),
    ):
        await _per_request_us(batch, width, settings)  # warm-up
        result[mode] = min(
            [await _per_request_us(batch, width, settings) for _ in range(settings.repeats)]
        )
    return result


async def _part1(
    settings: InProcessSettings, log: Callable[[str], None]
) -> dict[str, dict[str, float]]:
    server = FakeServer()
    floor = _wsgi_floor_us(settings)
    results = {FLOOR_WSGI: {"sequential": floor, "concurrent": floor}}
    results[FLOOR_ASGI] = await _measure(server, FLOOR_ASGI, apps.raw_asgi_hello, settings)
    log(f"  {FLOOR_ASGI}: {results[FLOOR_ASGI]}")
    for name in apps.ADAPTERS:
        app = apps.wrap(name, apps.hello_app)
        try:
            results[name] = await _measure(server, name, app, settings)
        finally:
            await apps.close_adapter(app)
        log(f"  {name}: {results[name]}")
    return results


def run_inprocess(
    settings: InProcessSettings, log: Callable[[str], None]
) -> dict[str, dict[str, float]]:
    """µs per request for every adapter, sequential and 32 at a time, plus both floors."""
    return asyncio.run(_part1(settings, log))


# --- Part 4 ---------------------------------------------------------------------------------

AWAIT_CASES = (
    ("bridge greenlet", "await_(asyncio.sleep(0.05))"),
    ("bridge thread", "await_(asyncio.sleep(0.05))"),
    ("a2wsgi", "time.sleep(0.05)"),
)


async def _await_once(name: str, settings: InProcessSettings) -> float | None:
    """Wall seconds for the whole batch, or None past the timeout."""
    server = FakeServer()
    view = apps.await_app if name.startswith("bridge") else apps.sleep_app
    app = apps.wrap(name, view)
    try:
        start = time.perf_counter()
        requests = [server.request(app) for _ in range(settings.await_requests)]
        try:
            statuses = await asyncio.wait_for(asyncio.gather(*requests), settings.await_timeout)
        except asyncio.TimeoutError:
            return None
        wall = time.perf_counter() - start
        if any(status != 200 for status in statuses):
            raise RuntimeError(f"{name}: not every request answered 200")
        return wall
    finally:
        await apps.close_adapter(app)


def run_await(settings: InProcessSettings, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Wall seconds for ``await_requests`` concurrent requests whose view waits 50 ms."""
    results: dict[str, dict[str, Any]] = {}
    for name, view in AWAIT_CASES:
        walls = [asyncio.run(_await_once(name, settings)) for _ in range(settings.await_repeats)]
        finished = [wall for wall in walls if wall is not None]
        results[name] = {"view": view, "seconds": min(finished) if finished else None}
        log(f"  {name}: {results[name]}")
    return results
