"""Part 2: requests/s for a Flask hello world over real sockets.

uvicorn serves the app through each adapter; waitress and gunicorn (gthread)
serve it natively as WSGI references. Each server runs in its own process
pinned to one CPU; the load generator runs in another, pinned to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apps
import loadgen
from server import running_server

NATIVE = ("waitress", "gunicorn")


@dataclass(frozen=True)
class E2ESettings:
    duration: float
    warmup: float
    connections: int
    server_cpu: int
    client_cpu: int
    http: str


def _measure(server_name: str, adapter: str, settings: E2ESettings) -> dict[str, Any]:
    with running_server(
        server_name, "flask", adapter, cpu=settings.server_cpu, http=settings.http
    ) as server:
        return loadgen.measure(
            server.port,
            settings.connections,
            settings.duration,
            settings.warmup,
            settings.client_cpu,
        )


def run_e2e(settings: E2ESettings, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Requests/s per adapter (under uvicorn) and per native WSGI server."""
    targets = [("uvicorn", adapter, adapter) for adapter in apps.ADAPTERS]
    targets += [(name, "", name) for name in NATIVE]
    results: dict[str, dict[str, Any]] = {}
    for server_name, adapter, label in targets:
        try:
            results[label] = _measure(server_name, adapter, settings)
        except Exception as error:  # keep going: one broken server must not hide the rest
            results[label] = {"rps": None, "error": repr(error)[:200]}
        log(f"  {label}: {results[label]}")
    return results
