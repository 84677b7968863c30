"""The four server setups of the fault tests and the soak run, each in a process of its own.

* ``uvicorn-thread``, ``uvicorn-greenlet``: uvicorn serving ``fault_apps.asgi_app``
  (``to_asgi``) with that executor.
* ``waitress``: waitress (4 threads) serving ``fault_apps.wsgi_app`` (``to_wsgi``).
* ``gunicorn``: one gunicorn ``gthread`` worker (4 threads) serving the same.

A process of its own, so that its threads, descriptors and memory are the
app's alone. uvicorn and waitress run from this file as a script: the child
binds 127.0.0.1:0 itself and prints ``PORT <n>``; gunicorn gets a port found
free a moment before. Server logs go to a file the caller can read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import HOST, free_port, stop_process, wait_for_port

SETUPS = ("uvicorn-thread", "uvicorn-greenlet", "waitress", "gunicorn")
ROOT = Path(__file__).resolve().parent.parent
APPS = "tests.apps.fault_apps"
STARTUP_TIMEOUT = 30.0


@dataclass
class Server:
    """A running setup: where to reach it, its process, and where its log goes."""

    setup: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def command(setup: str, app: str | None = None) -> tuple[list[str], dict[str, str], int | None]:
    """The command line, extra environment and (for gunicorn) the port of one setup."""
    python = sys.executable
    if setup.startswith("uvicorn-"):
        executor = setup.removeprefix("uvicorn-")
        script = [python, "-m", "tests.fault_servers", "uvicorn", app or "asgi_app"]
        return script, {"BRIDGE_FAULT_EXECUTOR": executor}, None
    if setup == "waitress":
        return [python, "-m", "tests.fault_servers", "waitress", app or "wsgi_app"], {}, None
    if setup == "gunicorn":
        port = free_port()
        line = [python, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "4"]
        line += ["--workers", "1", "--bind", f"{HOST}:{port}", "--graceful-timeout", "5"]
        return [*line, f"{APPS}:{app or 'wsgi_app'}"], {}, port
    raise ValueError(f"unknown setup {setup!r}; choose from {SETUPS}")


def start(
    setup: str, log: Path, app: str | None = None, env: dict[str, str] | None = None
) -> Server:
    """Start ``setup`` (serving ``app`` of fault_apps if given); wait until it listens."""
    line, extra, port = command(setup, app)
    environment = {**os.environ, **extra, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            line, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=sink
        )
    try:
        if port is None:
            port = _announced_port(process)
        wait_for_port(port, STARTUP_TIMEOUT, alive=lambda: process.poll() is None)
    except BaseException:
        _end(process)
        raise
    return Server(setup, port, process, log)


def _announced_port(process: subprocess.Popen[bytes]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()  # the child prints its port once it listens
    if not line.startswith(b"PORT "):
        raise RuntimeError(f"the server did not start (it said {line!r}); see its log")
    return int(line.split()[1])


def _end(process: subprocess.Popen[bytes]) -> None:
    try:
        stop_process(process)
    finally:
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def serving(
    setup: str, app: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``setup`` running for the ``with`` block, then stopped; one that will not stop fails."""
    with tempfile.TemporaryDirectory(prefix="bridge-faults-") as directory:
        server = start(setup, Path(directory) / "server.log", app, env)
        try:
            yield server
        finally:
            _end(server.process)


def wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit status, or ``None`` if the process still runs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = process.poll()
        if status is not None:
            return status
        time.sleep(0.05)
    return process.poll()


# --- The child ----------------------------------------------------------------------------


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


def _announce(port: int) -> None:
    print(f"PORT {port}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nobody reads stdout after this line: it must never fill up


def _serve_uvicorn(app_name: str) -> None:
    import importlib

    import uvicorn

    app = getattr(importlib.import_module(APPS), app_name)
    sock = _listen()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    _announce(sock.getsockname()[1])
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)  # as uvicorn's own command line does when startup fails


def _serve_waitress(app_name: str) -> None:
    import importlib

    import waitress.server  # type: ignore[import-untyped]

    app = getattr(importlib.import_module(APPS), app_name)
    server = waitress.server.create_server(app, host=HOST, port=0, threads=4)
    _announce(int(server.effective_port))
    server.run()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "uvicorn":
        _serve_uvicorn(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "waitress":
        _serve_waitress(sys.argv[2])
    else:
        raise SystemExit(f"usage: {sys.argv[0]} uvicorn|waitress <app attribute>")
