"""Serve one app in a subprocess: the child's ``main()`` and the parent's ``running_server()``.

The child binds 127.0.0.1:0 itself, prints ``PORT <n>`` on stdout and serves
on that very socket, so no port is ever guessed or reused. The parent starts
it in a new session and always kills that process group on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 30.0


def http_choice() -> str:
    """uvicorn's HTTP parser: httptools if installed, else h11; the same for every run."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


# --- The child ------------------------------------------------------------------------------


def _listen() -> socket.socket:
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when their
    # proto says TCP; with proto 0, uvicorn's separate head and body writes meet Nagle's
    # algorithm and delayed ACKs, and every response takes 40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _announce(port: int) -> None:
    print(f"PORT {port}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nobody reads stdout after this line


def _load_app(name: str):  # type: ignore[no-untyped-def]
    import apps

    if name == "flask":
        return apps.make_flask_app()
    if name == "hello":
        return apps.hello_app
    if name == "django":  # the benchmarks' Django project, its WSGI application
        from django_site.wsgi import application

        return application
    if name.startswith("fastapi-"):  # a FastAPI app as WSGI, through to_wsgi or a2wsgi
        return apps.fastapi_as_wsgi(name.removeprefix("fastapi-"))
    return apps.stream_app


def _serve_uvicorn(sock: socket.socket, adapter: str, app_name: str, http: str) -> None:
    import apps
    import uvicorn

    if adapter == "django-asgi":  # Django's own get_asgi_application()
        from django_site.asgi import application as asgi
    else:
        asgi = apps.wrap(adapter, _load_app(app_name))
    config = uvicorn.Config(
        asgi, loop="asyncio", http=http, log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[sock])


def _serve_waitress(sock: socket.socket, app_name: str) -> None:
    import logging

    import waitress

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N"
    waitress.serve(_load_app(app_name), sockets=[sock], threads=4, _quiet=True)


def _serve_gunicorn(sock: socket.socket, app_name: str) -> None:
    from gunicorn.app.base import BaseApplication

    options = {
        "bind": f"fd://{sock.detach()}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": 4,
        "loglevel": "warning",
        "accesslog": None,
    }

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):  # type: ignore[no-untyped-def]
            # In the worker, after the fork: a2wsgi's loop thread would not survive it.
            return _load_app(app_name)

    Gunicorn().run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=["uvicorn", "waitress", "gunicorn"], required=True)
    parser.add_argument("--adapter", default="")
    parser.add_argument(
        "--app",
        choices=["flask", "stream", "hello", "fastapi-bridge", "fastapi-a2wsgi", "django"],
        required=True,
    )
    parser.add_argument("--http", default="h11")
    parser.add_argument("--cpu", type=int, default=-1)
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    sock = _listen()
    _announce(sock.getsockname()[1])
    if args.server == "uvicorn":
        _serve_uvicorn(sock, args.adapter, args.app, args.http)
    elif args.server == "waitress":
        _serve_waitress(sock, args.app)
    else:
        _serve_gunicorn(sock, args.app)


# --- The parent -----------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    pid: int
    log: Path


def _read_port(proc: subprocess.Popen[bytes], deadline: float) -> int:
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise RuntimeError("the server did not report its port")
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.5))
        if ready:
            byte = proc.stdout.read(1)
            if not byte:
                raise RuntimeError("the server exited before reporting its port")
            line += byte
    return int(line.split()[1])


def _wait_ready(port: int, deadline: float) -> None:
    """Until ``GET /`` answers 200: gunicorn's worker boots after the socket listens."""
    while time.monotonic() < deadline:
        answer = _get_root(port)
        if answer is None:
            time.sleep(0.05)
        elif answer == (200, b"Hello, world!"):
            return
        else:
            raise RuntimeError(f"GET / answered {answer[0]} {answer[1][:80]!r}")
    raise RuntimeError("the server did not answer GET / in time")


def _get_root(port: int) -> tuple[int, bytes] | None:
    """``GET /``'s status and body, or None while nobody answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return None
    finally:
        conn.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    # The group may still hold a gunicorn worker even once the master is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _show_log(path: Path, label: str) -> None:
    """Anything the server logged at warning level or above is worth a look: summarize it."""
    text = path.read_text(errors="replace").strip()
    if text:
        tracebacks = text.count("Traceback (most recent call last)")
        print(
            f"--- server log ({label}): {len(text.splitlines())} lines, {tracebacks} tracebacks;"
            f" last lines:\n{text[-800:]}\n---",
            file=sys.stderr,
        )


@contextlib.contextmanager
def running_server(
    server: str, app: str, adapter: str = "", *, cpu: int = -1, http: str = "h11"
) -> Iterator[Server]:
    """Start a server subprocess, wait until it answers, yield it; kill it on the way out."""
    command = [sys.executable, str(HERE / "server.py"), "--server", server, "--app", app]
    command += ["--adapter", adapter, "--http", http, "--cpu", str(cpu)]
    with tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, start_new_session=True, cwd=HERE
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        port = _read_port(proc, deadline)
        _wait_ready(port, deadline)
        yield Server(port=port, pid=proc.pid, log=log_path)
        if proc.poll() is not None:
            raise RuntimeError("the server exited during the run")
    finally:
        _kill(proc)
        _show_log(log_path, f"{server} {adapter} {app}")
        if proc.stdout is not None:
            proc.stdout.close()
        with contextlib.suppress(OSError):
            log_path.unlink()


if __name__ == "__main__":
    main()
