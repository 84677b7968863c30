"""A legacy Flask-SQLAlchemy view whose query waits in PostgreSQL, under each way to serve it.

One command (``python benchmarks/database.py``, ``--quick`` for a short run):
it starts a throwaway PostgreSQL (tests/postgres.py), then for each contender
a server process pinned to one CPU, and drives it with keep-alive clients
from this process pinned to the other. The view runs ``SELECT pg_sleep(0.2)``
(200 clients) or ``SELECT 1`` (32 clients), through a pool of 90 connections
for every contender. Reported: requests/s, p50 and p99 latency, the server's
threads (peak, all its processes) and peak RSS (summed over its processes).
Results go to benchmarks/results/database.json and docs/database.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POOL = 90
CONTENDERS = {  # server, how it runs the app, driver, pool ("fair": bridge's FairQueuePool)
    "to_asgi greenlet + asyncpg, FairQueuePool": ("uvicorn", "greenlet", "asyncpg", "fair"),
    "to_asgi greenlet + asyncpg, default pool": ("uvicorn", "greenlet", "asyncpg", "default"),
    "to_asgi thread + psycopg": ("uvicorn", "thread", "psycopg", "default"),
    "a2wsgi + psycopg": ("uvicorn", "a2wsgi", "psycopg", "default"),
    "gunicorn gthread (40 threads) + psycopg": ("gunicorn", "gthread", "psycopg", "default"),
    "gunicorn gevent + psycopg (patched)": ("gunicorn", "gevent", "psycopg", "default"),
}
ROWS = {"pg_sleep(0.2), 200 clients": ("/sleep", 200), "SELECT 1, 32 clients": ("/one", 32)}
MAX_REQUESTS = 2_000_000  # a bound on the count, on top of the one on time


# --- the server process ----------------------------------------------------------------------


def make_app(url: str, pool: str) -> Any:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy import text

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_size": POOL,
        "max_overflow": 0,
        "pool_timeout": 120,
    }
    if pool == "fair":
        from bridge.sqlalchemy import FairQueuePool

        app.config["SQLALCHEMY_ENGINE_OPTIONS"]["poolclass"] = FairQueuePool
    db = SQLAlchemy(app)

    @app.get("/sleep")
    def sleep() -> str:
        db.session.execute(text("SELECT pg_sleep(0.2)"))
        return "slept"

    @app.get("/one")
    def one() -> str:
        return str(db.session.execute(text("SELECT 1")).scalar())

    return app


def serve(server: str, mode: str, driver: str, pool: str, where: str, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    url = f"postgresql+{driver}://{where}"
    if server == "uvicorn":
        import uvicorn

        import bridge

        app = make_app(url, pool)
        if mode == "a2wsgi":
            from a2wsgi import WSGIMiddleware

            asgi: Any = WSGIMiddleware(app)
        else:
            asgi = bridge.to_asgi(app, executor=mode)
        config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
        return
    from gunicorn.app.base import BaseApplication

    options: dict[str, Any] = {
        "bind": f"fd://{sock.detach()}",
        "workers": 1,
        "worker_class": mode,
        "loglevel": "warning",
        "accesslog": None,
    }
    if mode == "gthread":
        options["threads"] = 40
    else:
        options["worker_connections"] = 1000

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return make_app(url, pool)  # in the worker, after the fork (and gevent's patching)

    Gunicorn().run()


# --- the load ---------------------------------------------------------------------------------


async def _client(
    port: int, path: str, stop_at: float, measure_from: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    errors = 0
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < stop_at and len(latencies) < MAX_REQUESTS:
            started = loop.time()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            if started >= measure_from:
                latencies.append(loop.time() - started)
    finally:
        writer.close()
    return errors


async def load(port: int, path: str, clients: int, duration: float, warmup: float) -> Any:
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    stop_at = measure_from + duration
    latencies: list[float] = []
    errors = await asyncio.wait_for(
        asyncio.gather(
            *(_client(port, path, stop_at, measure_from, latencies) for _ in range(clients))
        ),
        timeout=warmup + duration + 60,
    )
    # Requests started in the window and finished: a rate over the window.
    latencies.sort()
    count = len(latencies)
    return {
        "rps": count / duration,
        "p50_ms": 1000 * latencies[count // 2] if count else None,
        "p99_ms": 1000 * latencies[min(count - 1, int(count * 0.99))] if count else None,
        "errors": sum(errors),
        "requests": count,
    }


# --- measuring the server ---------------------------------------------------------------------


def _group(pid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[3]) == pid:  # its process group
                    pids.append(int(entry))
    return pids


def _status(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Watch:
    """Samples the server's process group: peak threads, and each process's peak RSS."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.threads = 0
        self.rss_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        pids = _group(self.pid)
        self.threads = max(self.threads, sum(_status(p, "Threads") for p in pids))
        for p in pids:
            self.rss_kib[p] = max(self.rss_kib.get(p, 0), _status(p, "VmHWM"))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def stop(self) -> dict[str, Any]:
        self._sample()
        self._stop.set()
        self._thread.join()
        return {"threads": self.threads, "peak_rss_mib": sum(self.rss_kib.values()) / 1024}


@contextlib.contextmanager
def server_process(name: str, where: str, cpu: int) -> Iterator[tuple[int, int]]:
    command = [sys.executable, __file__, "--serve", *CONTENDERS[name], where, str(cpu)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, start_new_session=True, cwd=ROOT, env=_env()
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{name} did not start")
        port = int(line.split()[1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield port, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT)}


def measure(name: str, where: str, path: str, clients: int, settings: argparse.Namespace) -> Any:
    with server_process(name, where, cpu=0) as (port, pid):
        asyncio.run(load(port, path, 4, 1.0, 0.0))  # connect the pool's first connections
        watch = Watch(pid)
        result = asyncio.run(load(port, path, clients, settings.duration, settings.warmup))
        return result | watch.stop()


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row = next(iter(ROWS))
    names = list(results[row])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rps = [results[row][n].get("rps") or 0 for n in names]
    p99 = [results[row][n].get("p99_ms") or 0 for n in names]
    labels = [n.replace(" + ", "\n+ ") for n in names]
    left.barh(labels, rps, color="#4a7")
    left.set_title(f"{row}: requests/s (higher is better)")
    right.barh(labels, p99, color="#c64")
    right.set_title("p99 latency, ms (lower is better)")
    right.set_yticks([])
    left.invert_yaxis()
    right.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (3 s), for a look")
    parser.add_argument("--only", action="append", help="contenders whose name contains this")
    parser.add_argument("--serve", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        server, mode, driver, pool, where, cpu = args.serve
        return serve(server, mode, driver, pool, where, int(cpu))
    args.duration, args.warmup = (3.0, 1.0) if args.quick else (10.0, 2.0)
    sys.path.insert(0, str(ROOT))
    from tests.postgres import postgres_server

    names = [n for n in CONTENDERS if not args.only or any(o in n for o in args.only)]
    os.sched_setaffinity(0, {1})
    results: dict[str, dict[str, Any]] = {}
    with postgres_server(max_connections=POOL + 20) as where:
        for row, (path, clients) in ROWS.items():
            results[row] = {}
            for name in names:
                try:
                    results[row][name] = measure(name, where, path, clients, args)
                except Exception as error:  # one broken contender must not hide the rest
                    results[row][name] = {"rps": None, "error": repr(error)[:200]}
                print(f"{row} | {name}: {results[row][name]}", flush=True)
    out = HERE / "results" / "database.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, ROOT / "docs" / "database.png")
    for row, found in results.items():
        print(f"\n{row}\n\n| contender | req/s | p50 ms | p99 ms | threads | peak RSS MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, r in found.items():
            if r.get("rps") is None:
                print(f"| {name} | failed: {r.get('error')} | | | | |")
                continue
            print(
                f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
                f"| {r['threads']} | {r['peak_rss_mib']:.0f} |"
            )


if __name__ == "__main__":
    main()
