"""`bridge serve` and `bridge demo` as users run them: real processes, real servers, SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import stop_process

ROOT = Path(__file__).parent.parent


Served = tuple[str, "subprocess.Popen[str]"]


@contextlib.contextmanager
def bridge_command(
    *argv: str, marks: Path | None = None, stop: signal.Signals = signal.SIGTERM
) -> Iterator[Served]:
    """Run ``python -m bridge ARGV --port 0``; yield the URL it prints, then signal ``stop``."""
    environment = {**os.environ, "BRIDGE_MARKS": str(marks or "")}
    with subprocess.Popen(
        [sys.executable, "-m", "bridge", *argv, "--port", "0"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            url = _printed_url(process)
            _wait_until_answering(url)
            yield url, process
        finally:
            stop_process(process, stop)


def _printed_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"http://\S+", line)
        if found:
            return found.group(0)
    raise AssertionError(f"no URL printed; exit code {process.poll()}")


def _wait_until_answering(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.TransportError:  # noqa: PERF203 (a bounded start-up poll)
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def lines(marks: Path) -> list[str]:
    return [line.split()[0] for line in marks.read_text().splitlines()] if marks.exists() else []


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "waitress", "gunicorn"])
def test_serve_a_wsgi_app_on_each_server(server: str) -> None:
    with bridge_command("serve", "tests.apps.cli_apps:wsgi_app", "--server", server) as (url, _):
        assert httpx.get(url, timeout=10).json() == {"kind": "wsgi", "script_root": "", "self": "/"}


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "waitress", "gunicorn"])
def test_serve_an_asgi_app_and_sigterm_runs_lifespan_shutdown(server: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    with bridge_command(
        "serve", "tests.apps.cli_apps:asgi_app", "--server", server, marks=marks
    ) as (url, process):
        assert httpx.get(url, timeout=10).json()["kind"] == "asgi"
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert lines(marks) == ["startup", "shutdown"]


@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_ctrl_c_runs_lifespan_shutdown(server: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    with bridge_command(
        "serve",
        "tests.apps.cli_apps:asgi_app",
        "--server",
        server,
        marks=marks,
        stop=signal.SIGINT,
    ) as (url, process):
        assert httpx.get(url, timeout=10).status_code == 200
    assert process.returncode in (0, 130)  # a clean exit, not a KeyboardInterrupt traceback
    assert lines(marks) == ["startup", "shutdown"]


def test_reload_serves_and_stops(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    with bridge_command("serve", "tests.apps.cli_apps:asgi_app", "--reload", marks=marks) as (
        url,
        process,
    ):
        assert httpx.get(url, timeout=10).json()["pid"] != process.pid  # a reloader's child
    assert lines(marks) == ["startup", "shutdown"]


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_workers_are_separate_processes(server: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    with bridge_command(
        "serve", "tests.apps.cli_apps:asgi_app", "--server", server, "--workers", "2", marks=marks
    ) as (url, _):
        answered_by = set()
        for _ in range(200):  # new connections until both workers have answered
            answered_by.add(httpx.get(url, timeout=10).json()["pid"])
            if len(answered_by) == 2:
                break
    assert len(answered_by) == 2
    served = {int(line.split()[1]) for line in marks.read_text().splitlines()}
    assert served == answered_by
    assert sorted(lines(marks)) == ["shutdown", "shutdown", "startup", "startup"]


@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_root_path_with_or_without_the_prefix(server: str) -> None:
    with bridge_command(
        "serve", "tests.apps.cli_apps:wsgi_app", "--server", server, "--root-path", "/legacy"
    ) as (url, _):
        assert url.endswith("/legacy/")
        stripped = url.removesuffix("legacy/")  # as a proxy that strips the prefix sends it
        for address in (url, stripped):
            answer = httpx.get(address, timeout=10).json()
            assert answer == {"kind": "wsgi", "script_root": "/legacy", "self": "/legacy/"}


def test_the_demo_serves_all_three_uses() -> None:
    with bridge_command("demo") as (url, _), httpx.Client(base_url=url, timeout=10) as client:
        index = client.get("/").text
        for link in ("/legacy/", "/legacy/await", "/api/quote", "/hello", "/items/99"):
            assert f'href="{link}"' in index
        assert "await_" in client.get("/legacy/").text
        awaited = client.get("/legacy/await").json()
        assert awaited["quote"].startswith("Make it work")
        assert awaited["waited"] > 0.05  # it really awaited asyncio.sleep(0.1)
        assert client.get("/legacy/go-home", follow_redirects=False).headers["location"] == (
            "/legacy/"
        )
        assert client.get("/hello").json()["message"] == "Hello from a sync Flask view"
        missing = client.get("/items/99")
        assert (missing.status_code, missing.json()) == (404, {"detail": "no item 99"})
        assert client.get("/legacy/stream").text.count("chunk") == 5
