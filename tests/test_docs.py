"""The docs do what they say: every command in a ``sh`` block runs, and the walk-through answers.

Commands are collected from the ```sh blocks of README.md and docs/: server
commands are started (with a free port in place of 8000, or ``--port`` added)
and must answer below 500 and stop on SIGTERM; ``bridge check`` must pass;
``pip install`` lines must succeed (in this environment they find everything
installed already).
``bash scripts/test.sh`` is the command running this very test, so it is the
one command left out.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from tests.servers import free_port, stop_process

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PROGRAMS = ("uvicorn", "gunicorn", "waitress-serve", "hypercorn", "granian", "daphne")
# cheroot's own script imports the app before it puts the working directory on sys.path.
SERVERS = ("bridge serve", "bridge demo", "python -m cheroot", *PROGRAMS)


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                command = shlex.join(shlex.split(line, comments=True))
                if command and command != "bash scripts/test.sh":
                    found.append((page.relative_to(ROOT).as_posix(), command))
    return found


COMMANDS = documented_commands()


def test_the_docs_have_commands_to_run() -> None:
    pages = {page for page, _ in COMMANDS}
    assert {"README.md", "docs/cli.md", "docs/migrating.md"} <= pages
    assert any(command.startswith("bridge check") for _, command in COMMANDS)


def _as_run_here(command: str, port: int) -> list[str]:
    words = shlex.split(command.replace("8000", str(port)))
    if words[0] == "pip":
        return [sys.executable, "-m", *words]
    if words[0] == "python":
        words[0] = sys.executable
    if words[0] in ("bridge", *PROGRAMS):
        words[0] = str(Path(sys.executable).parent / words[0])
    serves = words[-1] == "scripts/demo.sh" or command.startswith(("bridge serve", "bridge demo"))
    if serves and "--port" not in words:
        words += ["--port", str(port)]
    return words


def _first_path(command: str) -> str:
    found = re.search(r"--root-path (\S+)", command)
    return found.group(1).rstrip("/") + "/" if found else "/"


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_works_as_written(page: str, command: str) -> None:
    port = free_port()
    words = _as_run_here(command, port)
    if command.startswith(("bridge check", "pip install")):
        finished = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert command.startswith("pip") or "Ready" in finished.stdout
        return
    assert command.startswith(SERVERS) or command == "bash scripts/demo.sh", (
        f"{page} documents {command!r}, which this test does not know how to run"
    )
    with subprocess.Popen(
        words, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        try:
            status = _first_answer(f"http://127.0.0.1:{port}{_first_path(command)}", process)
            assert status < 500, f"{command} answered {status}"
        finally:
            stop_process(process)


def _first_answer(url: str, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return httpx.get(url, timeout=10).status_code
        except httpx.TransportError:  # noqa: PERF203 (a bounded start-up poll)
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} (exit code {process.poll()})")


def test_the_migration_walk_through_answers_as_the_page_says(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from docs.examples.migrated_shop import app

    with caplog.at_level("INFO", logger="bridge.fallback"), TestClient(app) as client:
        assert client.get("/products").json()["served_by"] == "fastapi"
        missing = client.get("/products/9")
        assert (missing.status_code, missing.json()) == (404, {"detail": "no such product"})
        cart = client.post("/cart", json={"book": 1})
        assert cart.json() == {"cart": {"book": 1}, "served_by": "flask"}
        login = client.get("/login", follow_redirects=False)
        assert (login.status_code, login.headers["location"]) == (302, "/cart")
        assert login.cookies["session"] == "legacy"
    assert "POST /cart: no route in app 0 (FastAPI 'shop'), passed on" in caplog.messages


def test_a_mounted_flask_app_carries_its_prefix() -> None:
    from docs.examples.mount_fastapi import app

    with TestClient(app) as client:
        assert client.get("/legacy/").json() == {"script_root": "/legacy", "self": "/legacy/"}
        moved = client.get("/legacy/old-home", follow_redirects=False)
        assert moved.headers["location"] == "/legacy/"
