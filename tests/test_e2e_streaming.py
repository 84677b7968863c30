"""End to end: 256 MiB each way, with bounded server memory.

to_asgi under uvicorn (both executors) and to_wsgi under waitress, each server
in a subprocess of its own.

The uvicorn server (``servers.py`` run as a script) serves ``streaming_wsgi_app``
through ``to_asgi``; waitress serves ``tests/apps/stream_asgi.py``. The client
streams without buffering: ``iter_raw`` for the download, a generator for the
upload. A sampler thread reads the server's
VmRSS from ``/proc/PID/status`` during the transfer; the peak may not pass
the post-warm-up baseline by 64 MiB.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import (
    CHUNK,
    HOST,
    Running,
    chunks_of,
    free_port,
    uvicorn_subprocess,
    wait_for_port,
)

MIB = 1024 * 1024
TOTAL = 256 * MIB
WARMUP = 16 * MIB
GROWTH_LIMIT = 64 * MIB


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class RssSampler:
    """Samples a process's resident memory every 10 ms, in a thread, until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1
            self._stop.wait(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes(self.pid))


def download(client: httpx.Client, size: int) -> int:
    received = 0
    with client.stream("GET", "/download", params={"size": str(size)}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        for piece in response.iter_raw(CHUNK):
            received += len(piece)
    return received


def upload(client: httpx.Client, size: int) -> int:
    response = client.post("/upload", content=chunks_of(size))
    assert response.status_code == 200, response.text
    return int(response.text)


@contextlib.contextmanager
def waitress_subprocess() -> Iterator[tuple[Running, subprocess.Popen[bytes]]]:
    """waitress serving tests/apps/stream_asgi.py through to_wsgi, in its own process."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waitress",
            "--host",
            HOST,
            "--port",
            str(port),
            "--threads",
            "4",
            "tests.apps.stream_asgi:wsgi",
        ],
        cwd=Path(__file__).parent.parent,
    )
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
        yield Running(port=port), process
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module", params=["thread", "greenlet", "to_wsgi under waitress"])
def streaming_server(request: pytest.FixtureRequest) -> Any:
    serving = (
        waitress_subprocess()
        if request.param == "to_wsgi under waitress"
        else uvicorn_subprocess(request.param)
    )
    with serving as (running, process):
        with httpx.Client(base_url=running.url, timeout=30) as client:
            assert int(client.get("/pid").text) == process.pid
        yield running, process
        assert process.poll() is None, "the server process died during the test"


def _baseline(client: httpx.Client, pid: int) -> int:
    # Warm up both directions so that one-time allocations are not counted as growth.
    assert download(client, WARMUP) == WARMUP
    assert upload(client, WARMUP) == WARMUP
    time.sleep(0.1)
    return rss_bytes(pid)


@pytest.mark.parametrize("transfer", ["download", "upload"])
def test_256_mib_with_bounded_memory(streaming_server: Any, transfer: str) -> None:
    running, process = streaming_server
    move = download if transfer == "download" else upload
    with httpx.Client(base_url=running.url, timeout=30) as client:
        baseline = _baseline(client, process.pid)
        with RssSampler(process.pid) as sampler:
            moved = move(client, TOTAL)
    assert moved == TOTAL
    assert sampler.samples > 5
    growth = sampler.peak - baseline
    assert growth < GROWTH_LIMIT, f"server RSS grew by {growth / MIB:.1f} MiB during the {transfer}"
