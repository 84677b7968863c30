"""Part 3: big bodies through uvicorn, with the server's peak memory.

Each (adapter, scenario) gets a fresh server process, so its peak RSS
(``VmHWM``) is its own: the growth is the peak after the transfers minus the
peak after a 1 MiB warm-up. The rate is the best of ``repeats`` transfers on
that server (one transfer alone is noisy); a timeout, or a transfer that took
over a third of it, ends the repeats. The client is a plain blocking socket
that never holds more than 1 MiB; every transfer is bounded by a deadline.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apps
from server import running_server

MiB = 1024 * 1024
SCENARIOS = ("download", "upload", "slow download")
SLOW_READ = MiB  # the slow client reads this much ...
SLOW_PAUSE = 0.005  # ... then sleeps this long


@dataclass(frozen=True)
class StreamSettings:
    size: int  # bytes per transfer
    timeout: float  # seconds per transfer, at most
    repeats: int  # transfers per server; the best rate counts
    server_cpu: int
    http: str


class TransferTimeout(Exception):
    pass


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (``VmHWM``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc")


class _Conn:
    """A socket whose every call is bounded by one deadline."""

    def __init__(self, port: int, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=self._left())
        self.buffer = bytearray(MiB)
        self.view = memoryview(self.buffer)

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TransferTimeout
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._left())
        try:
            self.sock.sendall(data)
        except TimeoutError as error:
            raise TransferTimeout from error

    def recv(self, limit: int = MiB) -> memoryview:
        self.sock.settimeout(self._left())
        try:
            count = self.sock.recv_into(self.view, min(limit, MiB))
        except TimeoutError as error:
            raise TransferTimeout from error
        if count == 0:
            raise ConnectionError("the server closed the connection early")
        return self.view[:count]

    def read_head(self) -> tuple[int, int, bytes]:
        """Status, Content-Length, and the body bytes that came with the head."""
        head = b""
        while b"\r\n\r\n" not in head:
            if len(head) > 65536:
                raise RuntimeError("response head too large")
            head += bytes(self.recv(65536))
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        return status, length, rest

    def close(self) -> None:
        self.sock.close()


def download(port: int, size: int, deadline: float, slow: bool = False) -> None:
    conn = _Conn(port, deadline)
    try:
        conn.send(
            f"GET /download?size={size} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status, length, rest = conn.read_head()
        if status != 200 or length != size:
            raise RuntimeError(f"download answered {status} with {length} bytes")
        got = len(rest)
        since_pause = got
        while got < size:
            got += len(conn.recv(size - got))
            if slow and got - since_pause >= SLOW_READ:
                time.sleep(SLOW_PAUSE)
                since_pause = got
    finally:
        conn.close()


def upload(port: int, size: int, deadline: float) -> None:
    conn = _Conn(port, deadline)
    block = b"u" * MiB
    try:
        conn.send(
            f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n"
            "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".encode()
        )
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            conn.send(piece)
            sent += len(piece)
        status, length, body = conn.read_head()
        while len(body) < length:
            body += bytes(conn.recv(length - len(body)))
        if status != 200 or int(body) != size:
            raise RuntimeError(f"upload answered {status} {body[:80]!r}")
    finally:
        conn.close()


def _transfer(scenario: str, port: int, size: int, deadline: float) -> None:
    if scenario == "upload":
        upload(port, size, deadline)
    else:
        download(port, size, deadline, slow=scenario == "slow download")


def _one(adapter: str, scenario: str, settings: StreamSettings) -> dict[str, Any]:
    with running_server(
        "uvicorn", "stream", adapter, cpu=settings.server_cpu, http=settings.http
    ) as server:
        download(server.port, MiB, time.monotonic() + settings.timeout)  # warm-up
        before = peak_rss(server.pid)
        times: list[float] = []
        outcome = "ok"
        for _ in range(settings.repeats):
            start = time.monotonic()
            try:
                _transfer(scenario, server.port, settings.size, start + settings.timeout)
            except TransferTimeout:
                outcome = "timeout"
                break
            times.append(time.monotonic() - start)
            if times[-1] > settings.timeout / 3:
                break  # so slow that another try would only repeat the point
        growth = (peak_rss(server.pid) - before) / MiB
    seconds = min(times) if outcome == "ok" else settings.timeout
    mib_s = settings.size / MiB / seconds if outcome == "ok" else None
    return {"outcome": outcome, "mib_s": mib_s, "seconds": seconds, "rss_growth_mib": growth}


def run_streaming(
    settings: StreamSettings, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """MiB/s and peak-RSS growth, per scenario and adapter."""
    results: dict[str, dict[str, Any]] = {scenario: {} for scenario in SCENARIOS}
    for adapter in apps.ADAPTERS:
        for scenario in SCENARIOS:
            try:
                result = _one(adapter, scenario, settings)
            except Exception as error:  # keep going: one broken run must not hide the rest
                result = {
                    "outcome": f"error: {error!r}"[:200],
                    "mib_s": None,
                    "rss_growth_mib": None,
                }
            results[scenario][adapter] = result
            log(f"  {scenario} / {adapter}: {result}")
    return results
