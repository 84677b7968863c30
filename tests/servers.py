"""Real servers for the end-to-end tests, on 127.0.0.1 and ephemeral ports.

* ``uvicorn_server(app)``: uvicorn in a background thread, port 0, the bound
  port read back from ``server.servers[0].sockets``.
* ``hypercorn_server(app, worker="asyncio"|"trio")``: ``hypercorn.asyncio.serve``
  or ``hypercorn.trio.serve`` (under ``trio.run``) in a background thread with
  a shutdown trigger, on a port found free by binding a socket to port 0.
* ``streaming_subprocess(setup)``: uvicorn, granian or daphne serving
  ``tests/apps/stream_wsgi.py`` through ``to_asgi``, or waitress, granian
  (WSGI) or cheroot serving ``tests/apps/stream_asgi.py`` through ``to_wsgi``,
  each from its own command line in a process of its own (so that its memory
  can be measured).
* Raw-socket helpers for clients that misbehave.

Every wait here is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 15.0
CHUNK = 64 * 1024


@dataclass
class Running:
    """A server that is up: where to reach it and what went wrong in its thread."""

    port: int
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    """A port that was free a moment ago (the OS picked it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = STARTUP_TIMEOUT, alive: Callable[[], bool] = lambda: True
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server meant for port {port} died before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")


def _guarded(target: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            target()
        except BaseException as error:  # kept for the fixture to report, not lost in a thread
            errors.append(error)

    return run


# --- uvicorn -------------------------------------------------------------------------------


@contextlib.contextmanager
def uvicorn_server(app: Any, **options: Any) -> Iterator[Running]:
    """Serve ``app`` with uvicorn in a daemon thread; stop it on exit."""
    import uvicorn

    options.setdefault("log_config", None)
    options.setdefault("lifespan", "on")
    options.setdefault("timeout_graceful_shutdown", 2)
    options.setdefault("timeout_keep_alive", 30)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=0, **options))
    errors: list[BaseException] = []
    thread = threading.Thread(target=_guarded(server.run, errors), name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise RuntimeError(f"uvicorn did not start: {errors!r}")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True

    running = Running(port=port, thread=thread, errors=errors, stop=stop)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)


# --- hypercorn -----------------------------------------------------------------------------


@contextlib.contextmanager
def hypercorn_server(app: Any, worker: str = "asyncio") -> Iterator[Running]:
    """Serve ``app`` with hypercorn's asyncio or trio worker in a daemon thread."""
    from hypercorn.config import Config

    port = free_port()
    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.graceful_timeout = 1
    config.accesslog = None
    errors: list[BaseException] = []
    trigger: dict[str, Callable[[], None]] = {}
    armed = threading.Event()

    if worker == "asyncio":
        from hypercorn.asyncio import serve as asyncio_serve

        async def main_asyncio() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            trigger["stop"] = lambda: loop.call_soon_threadsafe(stop.set)
            armed.set()
            await asyncio_serve(app, config, shutdown_trigger=stop.wait)

        def target() -> None:
            asyncio.run(main_asyncio())

    elif worker == "trio":
        import trio
        from hypercorn.trio import serve as trio_serve

        async def main_trio() -> None:
            stop = trio.Event()
            token = trio.lowlevel.current_trio_token()
            trigger["stop"] = lambda: token.run_sync_soon(stop.set)
            armed.set()
            await trio_serve(app, config, shutdown_trigger=stop.wait)

        def target() -> None:
            trio.run(main_trio)

    else:
        raise ValueError(f"unknown hypercorn worker {worker!r}")

    thread = threading.Thread(
        target=_guarded(target, errors), name=f"hypercorn-{worker}", daemon=True
    )
    thread.start()
    try:
        if not armed.wait(STARTUP_TIMEOUT):
            raise RuntimeError(f"hypercorn ({worker}) did not start: {errors!r}")
        wait_for_port(port, alive=thread.is_alive)
    except BaseException:
        if "stop" in trigger:
            trigger["stop"]()
        thread.join(5)
        raise

    def stop() -> None:
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            trigger["stop"]()

    running = Running(port=port, thread=thread, errors=errors, stop=stop)
    try:
        yield running
    finally:
        stop()
        thread.join(10)


# --- raw sockets ---------------------------------------------------------------------------


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_head(sock: socket.socket, limit: int = 65536) -> tuple[bytes, bytes]:
    """Read until the end of the response head: (head, whatever body bytes came with it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
        if len(data) > limit:
            raise AssertionError(f"no end of head in {limit} bytes: {data[:200]!r}")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one response framed by Content-Length: (head, body)."""
    head, body = read_head(sock)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return head, body


def status_of(head: bytes) -> int:
    return int(head.split(b"\r\n", 1)[0].split()[1])


# --- a server of its own process, for the streaming tests -----------------------------------

APPS = "tests.apps"
# Servers that run tests/apps/stream_wsgi.py through to_asgi (one setup per executor) ...
TO_ASGI_SERVERS = ("uvicorn", "granian", "daphne")
# ... and those that run tests/apps/stream_asgi.py through to_wsgi.
TO_WSGI_SERVERS = ("waitress", "granian-wsgi", "cheroot")
SETUPS = (
    *(f"{server}-{executor}" for server in TO_ASGI_SERVERS for executor in ("thread", "greenlet")),
    *TO_WSGI_SERVERS,
)
# A control, not a setup: the ASGI app under daphne as it is, with no bridge.
DAPHNE_NATIVE = "daphne-native"


def server_command(setup: str, port: int) -> list[str]:
    """The command line a user would type to serve the streaming app of ``setup`` on ``port``."""
    if setup in TO_WSGI_SERVERS:
        server, target = setup, f"{APPS}.stream_asgi:wsgi"
    elif setup == DAPHNE_NATIVE:
        server, target = "daphne", f"{APPS}.stream_asgi:app"
    else:
        server, _, executor = setup.rpartition("-")
        if server not in TO_ASGI_SERVERS or executor not in ("thread", "greenlet"):
            raise ValueError(f"unknown setup {setup!r}; choose from {SETUPS}")
        target = f"{APPS}.stream_wsgi:{executor}"
    where = ["--host", HOST, "--port", str(port)]
    granian = ["-m", "granian", "--workers", "1", "--log-level", "warning", *where]
    commands = {
        "uvicorn": ["-m", "uvicorn", *where, "--log-level", "warning"],
        "granian": [*granian, "--interface", "asgi"],
        "daphne": ["-m", "daphne", "--bind", HOST, "--port", str(port), "-v", "0"],
        "waitress": ["-m", "waitress", *where],
        "granian-wsgi": [*granian, "--interface", "wsgi"],
        "cheroot": ["-m", "cheroot", "--bind", f"{HOST}:{port}"],
    }
    return [sys.executable, *commands[server], target]


@contextlib.contextmanager
def streaming_subprocess(setup: str) -> Iterator[tuple[Running, subprocess.Popen[bytes]]]:
    """``setup`` (one of SETUPS) serving its streaming app in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        server_command(setup, port),
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its workers too can be ended, if it will not end them
    )
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
        yield Running(port=port), process
    finally:
        try:
            stop_process(process)
        finally:
            with contextlib.suppress(ProcessLookupError):  # none left: the usual case
                os.killpg(process.pid, signal.SIGKILL)


def stop_process(process: subprocess.Popen[Any], stop: int = signal.SIGTERM) -> None:
    """Send ``stop`` and wait up to 15 s; one that will not end is killed and fails the test."""
    if process.poll() is not None:
        return
    process.send_signal(stop)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        name = signal.Signals(stop).name
        raise AssertionError(f"the server did not stop within 15 s of {name}") from None


def run_waitress(server: Any) -> None:
    """Run an in-process waitress server until another thread closes it.

    Closing it from outside can pull a socket from under its select() loop
    (``EBADF``); that is how it stops, not a failure of the test.
    """
    try:
        server.run()
    except (OSError, ValueError):
        listener = getattr(server, "socket", None)
        if listener is not None and listener.fileno() != -1:
            raise
