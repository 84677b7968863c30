"""End to end, on every server we test: 256 MiB each way with bounded memory,
a client that leaves mid-stream, and ``await_``.

``to_asgi`` under uvicorn, granian (``--interface asgi``) and daphne, each with
both executors, serving ``tests/apps/stream_wsgi.py``; ``to_wsgi`` under
waitress, granian (``--interface wsgi``) and cheroot serving
``tests/apps/stream_asgi.py``. Each server runs from its own command line in a
process of its own (``tests/servers.py``). The client streams without
buffering: ``iter_raw`` for the download, a generator for the uploads (chunked,
or with a Content-Length). A sampler thread reads the VmRSS of the process
that runs the app (granian's worker, a child of the process started) from
``/proc/PID/status`` during the transfer; the peak may not pass the
post-warm-up baseline by 64 MiB (under daphne, by 64 MiB more than the same
transfer costs daphne serving an ASGI app with no bridge).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.apps.stream_wsgi import CHUNK, chunks_of
from tests.servers import (
    DAPHNE_NATIVE,
    SETUPS,
    TO_WSGI_SERVERS,
    connect,
    read_head,
    status_of,
    streaming_subprocess,
)

TO_ASGI_SETUPS = [setup for setup in SETUPS if setup not in TO_WSGI_SERVERS]

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


def upload(client: httpx.Client, size: int, framing: str = "chunked") -> int:
    """Send ``size`` bytes from a generator, chunked or with a Content-Length.

    The app answers what it read and the Content-Length it saw: the one sent,
    or for a chunked body none, or the length of the whole body where the
    server reads it all first (waitress does).
    """
    headers = {"Content-Length": str(size)} if framing == "length" else {}
    response = client.post("/upload", content=chunks_of(size), headers=headers)
    sent = response.request.headers
    assert ("transfer-encoding" in sent) == (framing == "chunked"), sent
    assert response.status_code == 200, response.text
    received, length = response.text.split()
    assert length in ((str(size),) if framing == "length" else ("-", str(size))), response.text
    return int(received)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no PPid for process {pid}")


@pytest.fixture(scope="module", params=SETUPS)
def streaming_server(request: pytest.FixtureRequest) -> Any:
    """The server of one setup, and the pid of the process that runs the app."""
    with streaming_subprocess(request.param) as (running, process):
        with httpx.Client(base_url=running.url, timeout=30) as client:
            app_pid = int(client.get("/pid").text)
        assert process.pid in (app_pid, parent_of(app_pid)), "the app runs in another process"
        yield request.param, running, app_pid
        assert process.poll() is None, "the server process died during the test"


def _baseline(client: httpx.Client, pid: int) -> int:
    # Warm up both directions so that one-time allocations are not counted as growth.
    assert download(client, WARMUP) == WARMUP
    assert upload(client, WARMUP) == WARMUP
    assert upload(client, WARMUP, "length") == WARMUP
    time.sleep(0.1)
    return rss_bytes(pid)


TRANSFERS = {
    "download": download,
    "chunked-upload": lambda client, size: upload(client, size, "chunked"),
    "upload-with-length": lambda client, size: upload(client, size, "length"),
}


def growth_during(url: str, pid: int, transfer: str) -> int:
    """How far ``pid``'s resident memory rose above its warm baseline during ``transfer``."""
    with httpx.Client(base_url=url, timeout=30) as client:
        baseline = _baseline(client, pid)
        with RssSampler(pid) as sampler:
            moved = TRANSFERS[transfer](client, TOTAL)
    assert moved == TOTAL
    assert sampler.samples > 5
    return sampler.peak - baseline


@pytest.fixture(scope="module")
def daphne_native() -> Any:
    """What each transfer costs daphne serving tests/apps/stream_asgi.py's app with no bridge."""
    with streaming_subprocess(DAPHNE_NATIVE) as (running, _):
        with httpx.Client(base_url=running.url, timeout=30) as client:
            pid = int(client.get("/pid").text)
        growth: dict[str, int] = {}

        def cost(transfer: str) -> int:
            if transfer not in growth:
                growth[transfer] = growth_during(running.url, pid, transfer)
            return growth[transfer]

        yield cost


@pytest.mark.parametrize("transfer", list(TRANSFERS))
def test_256_mib_with_bounded_memory(
    streaming_server: Any, transfer: str, request: pytest.FixtureRequest
) -> None:
    setup, running, pid = streaming_server
    limit = GROWTH_LIMIT
    if setup.startswith("daphne-"):
        # daphne holds what it moves: a request body whole before the app starts, a response
        # as fast as the app sends it (no backpressure). The bridge may add nothing to that.
        limit += request.getfixturevalue("daphne_native")(transfer)
    growth = growth_during(running.url, pid, transfer)
    assert growth < limit, (
        f"{setup}'s RSS grew by {growth / MIB:.1f} MiB during the {transfer} "
        f"(limit {limit / MIB:.1f} MiB)"
    )


def test_a_client_that_leaves_mid_stream_ends_the_app(streaming_server: Any) -> None:
    setup, running, _ = streaming_server
    token = uuid.uuid4().hex
    with connect(running.port, timeout=5) as sock:
        sock.sendall(f"GET /endless?token={token} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        head, rest = read_head(sock)
        assert status_of(head) == 200, head
        received = len(rest)
        while received < 1024 * 1024:  # some of the body, then leave with a reset
            piece = sock.recv(65536)
            assert piece, "the server ended an endless stream"
            received += len(piece)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with httpx.Client(base_url=running.url, timeout=10) as client:
        deadline = time.monotonic() + 5
        state = client.get("/closed", params={"token": token}).text
        while state == "open" and time.monotonic() < deadline:
            time.sleep(0.02)
            state = client.get("/closed", params={"token": token}).text
        assert state == "closed", f"{setup}: the app's stream is {state} 5 s after the client left"
        assert client.get("/pid").status_code == 200


@pytest.mark.parametrize("streaming_server", TO_ASGI_SETUPS, indirect=True)
def test_await_in_the_wsgi_app_gets_its_value(streaming_server: Any) -> None:
    _, running, _ = streaming_server
    with httpx.Client(base_url=running.url, timeout=10) as client:
        answers = [client.get("/await") for _ in range(3)]
    assert [(answer.status_code, answer.text) for answer in answers] == [(200, "AWAITED")] * 3
