"""A real Django project (SQLite, sessions, auth, CSRF, a model) served by real uvicorn.

Django's own ASGI handler runs each sync view in a thread of asgiref's; a view
that calls ``bridge.await_`` on Django's async ORM, ``auser()`` and the async
cache (thread-sensitive calls, each of them) must answer, with several
requests interleaved.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Running, free_port, stop_process, wait_for_port

ROOT = Path(__file__).parent.parent


@pytest.fixture
def django_under_uvicorn(tmp_path: Path) -> Iterator[Running]:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
        "BRIDGE_TEST_DB": str(tmp_path / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    migrate = [sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"]
    subprocess.run(migrate, env=environment, cwd=ROOT, check=True, timeout=60)
    port = free_port()
    serve = [sys.executable, "-m", "uvicorn", "tests.django_project.asgi:application"]
    process = subprocess.Popen(
        [*serve, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=environment,
        cwd=ROOT,
    )
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
        yield Running(port=port)
    finally:
        stop_process(process)


def test_await_in_sync_views_reaches_djangos_async_apis(django_under_uvicorn: Running) -> None:
    requests = 8

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=django_under_uvicorn.url, timeout=20) as client:
            return await asyncio.gather(
                *(client.get("/await/", params={"token": f"t{index}"}) for index in range(requests))
            )

    answers = asyncio.run(main())
    views = set()
    for index, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["count"], body["anonymous"], body["cached"]) == (1, True, f"t{index}")
        # Both kinds of thread-sensitive call ran on the view's own thread.
        assert body["asgiref"] == body["bridge"] == body["view"], body
        views.add(body["view"])
    assert len(views) >= 2  # Django's handler gives each request a thread of its own
