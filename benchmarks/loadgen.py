"""HTTP/1.1 keep-alive load: wrk when installed, else a small asyncio load generator.

Run as a script it is the built-in generator: ``connections`` sockets each
send ``GET /`` (or ``--path``), wait for the whole response (framed by Content-Length), and
send the next, for ``warmup`` + ``duration`` seconds; only responses that
complete in the last ``duration`` seconds count, and their latencies give the
p50 and p99. It prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MAX_RESPONSES = 50_000_000  # a bound on the count, on top of the one on time
MAX_RECONNECTS = 1_000


@dataclass
class _Run:
    measure_from: float
    stop_at: float
    completed: int = 0
    errors: int = 0
    reconnects: int = 0
    stopping: bool = False
    open: set[_Client] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)

    def record(self, now: float, status: int, latency: float) -> None:
        if status != 200:
            self.errors += 1
        if now >= self.measure_from:
            self.completed += 1
            self.latencies.append(latency)
        if now >= self.stop_at or self.completed >= MAX_RESPONSES:
            self.stopping = True


class _Client(asyncio.Protocol):
    """One keep-alive connection sending one request at a time."""

    def __init__(self, request: bytes, run: _Run, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.run = run
        self.loop = loop
        self.buffer = bytearray()
        self.need: int | None = None  # bytes of the current response, once its head is in
        self.status = 0
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.run.open.add(self)
        self.sent = self.loop.time()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._take_response():
            now = self.loop.time()
            self.run.record(now, self.status, now - self.sent)
            assert self.transport is not None
            if self.run.stopping:
                self.transport.close()
                return
            self.sent = now
            self.transport.write(self.request)

    def _take_response(self) -> bool:
        buffer = self.buffer
        if self.need is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            if match is None:
                raise RuntimeError("the load generator needs a Content-Length")
            self.need = end + 4 + int(match.group(1))
        if len(buffer) < self.need:
            return False
        del buffer[: self.need]
        self.need = None
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.open.discard(self)


async def _connect(port: int, request: bytes, run: _Run) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: _Client(request, run, loop), "127.0.0.1", port)


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def generate(
    port: int, connections: int, duration: float, warmup: float, path: str = "/"
) -> dict[str, Any]:
    """Keep ``connections`` requests in flight; responses per second over ``duration``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    run = _Run(measure_from=start + warmup, stop_at=start + warmup + duration)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    await asyncio.gather(*(_connect(port, request, run) for _ in range(connections)))
    hard_stop = run.stop_at + 10.0
    while loop.time() < hard_stop:
        await asyncio.sleep(0.05)
        if run.stopping and not run.open:
            break
        missing = connections - len(run.open)
        if not run.stopping and missing and run.reconnects < MAX_RECONNECTS:
            run.reconnects += missing  # the server closed some: replace them
            await asyncio.gather(*(_connect(port, request, run) for _ in range(missing)))
    for client in list(run.open):
        if client.transport is not None:
            client.transport.abort()
    return {
        "rps": run.completed / duration,
        "completed": run.completed,
        "errors": run.errors,
        "reconnects": run.reconnects,
        "p50_ms": _ms(_percentile(run.latencies, 0.50)),
        "p99_ms": _ms(_percentile(run.latencies, 0.99)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


# --- The parent side ------------------------------------------------------------------------


def _pin(cpu: int) -> None:
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})


def _with_wrk(
    wrk: str, port: int, connections: int, duration: float, warmup: float, cpu: int
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/"

    def wrk_run(seconds: float) -> str:
        command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            preexec_fn=lambda: _pin(cpu),
            check=True,
        )
        return done.stdout

    if warmup > 0:
        wrk_run(warmup)
    out = wrk_run(duration)
    found = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"could not read wrk's output: {out[-300:]!r}")
    rps = float(found.group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    return {"rps": rps, "errors": int(bad.group(1)) if bad else 0, "tool": "wrk"}


def measure(
    port: int,
    connections: int,
    duration: float,
    warmup: float,
    cpu: int,
    path: str = "/",
    latency: bool = False,
) -> dict[str, Any]:
    """Requests/s against ``GET path`` on ``port``, from a separate process pinned to ``cpu``.

    With ``latency``, always the built-in generator, which reports p50 and p99.
    """
    wrk = shutil.which("wrk")
    if wrk and path == "/" and not latency:
        return _with_wrk(wrk, port, connections, duration, warmup, cpu)
    command = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--cpu",
        str(cpu),
        "--path",
        path,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=warmup + duration + 60, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"tool": "python"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--cpu", type=int, default=-1)
    parser.add_argument("--path", default="/")
    args = parser.parse_args()
    _pin(args.cpu)
    result = asyncio.run(
        generate(args.port, args.connections, args.duration, args.warmup, args.path)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
