"""Fault injection against real servers: after every fault the server answers and holds nothing.

Four setups (``tests/fault_servers.py``), each a process of its own: uvicorn
serving ``to_asgi`` with the thread and with the greenlet executor, and
waitress and gunicorn (gthread) serving ``to_wsgi``. The apps
(``tests/apps/fault_apps.py``) misbehave on demand, and answer
``/_accounting`` outside the bridge: threads, the thread pool's busy workers,
greenlets, asyncio tasks, file descriptors, resident memory, GC-tracked objects.

The baseline is taken after a warm-up that injects every fault once and
sends 8 requests at once, so pools have grown to what the faults need. After
a fault, injected ``N`` times, the server must answer ``/ok`` and, within
``SETTLE`` s, hold no more than at the baseline. The faults themselves check
the answer each client must get (``tests/faultclient.py``).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.apps.fault_apps import STARTUP_FAILURE
from tests.fault_servers import SETUPS, Server, serving, wait_for_exit
from tests.faultclient import (
    FAULTS,
    MIB,
    GoodClient,
    gated_stream,
    leave_mid_download,
    slow_writer,
    stalled_reader,
)

N = 4
SETTLE = 5.0
CYCLES = 5
RSS_LIMIT = 8 * MIB
OBJECTS_PER_CYCLE = 40
STREAM = 256 * MIB

# What must return to its baseline (or below) once the faults are over.
COUNTED = (
    "threads_outside_pool",
    "pool_threads",
    "pool_busy",
    "greenlets",
    "greenlets_busy",
    "tasks",
    "fds",
)


@dataclass
class Served:
    server: Server
    good: GoodClient
    baseline: dict[str, int]


def counts(reading: dict[str, int]) -> dict[str, int]:
    derived = {"threads_outside_pool": reading["threads"] - reading["pool_threads"]}
    return {key: derived.get(key, reading.get(key, 0)) for key in COUNTED}


def read_settled(good: GoodClient) -> dict[str, int]:
    """A reading taken once two in a row agree (bounded), so a closing socket is not counted."""
    previous = good.accounting(heavy=True)
    for _ in range(50):
        time.sleep(0.05)
        reading = good.accounting(heavy=True)
        if counts(reading) == counts(previous):
            return reading
        previous = reading
    return previous


def leftovers(served: Served, timeout: float = SETTLE) -> dict[str, tuple[int, int]]:
    """What is still above its baseline after up to ``timeout`` s: {name: (baseline, now)}."""
    base = counts(served.baseline)
    deadline = time.monotonic() + timeout
    while True:
        now = counts(served.good.accounting(heavy=True))
        over = {key: (base[key], now[key]) for key in COUNTED if now[key] > base[key]}
        if not over or time.monotonic() > deadline:
            return over
        time.sleep(0.05)


def burst(url: str, count: int) -> None:
    def one(_: int) -> int:
        return httpx.get(f"{url}/hang?seconds=0.2", timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        assert list(pool.map(one, range(count))) == [200] * count


def one_cycle(served: Served) -> None:
    for fault in FAULTS.values():
        fault(served.server.port)
    served.good.ok()
    served.good.echo()
    served.good.stream()


@pytest.fixture(scope="module", params=SETUPS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with serving(request.param) as server, GoodClient(server.url) as good:
        good.ok()
        good.echo()
        good.stream()
        for fault in FAULTS.values():
            fault(server.port)
        burst(server.url, 8)
        baseline = read_settled(good)
        assert baseline["pool_busy"] == 0 and baseline.get("greenlets_busy") == 0, baseline
        yield Served(server, good, baseline)
        assert server.process.poll() is None, f"{server.setup} died:\n{server.log_text()}"


# --- Every fault, then the accounting ---------------------------------------------------------


@pytest.mark.parametrize("fault", list(FAULTS))
def test_after_a_fault_the_server_holds_nothing_more(served: Served, fault: str) -> None:
    for _ in range(N):
        FAULTS[fault](served.server.port)
    served.good.ok()
    left = leftovers(served)
    assert not left, f"{fault} x{N} on {served.server.setup} left (baseline, now): {left}"


def test_memory_has_no_upward_trend_over_fault_cycles(served: Served) -> None:
    one_cycle(served)
    first = read_settled(served.good)
    for _ in range(CYCLES):
        one_cycle(served)
    last = read_settled(served.good)
    rss = last["rss"] - first["rss"]
    objects = last["objects"] - first["objects"]
    where = f"over {CYCLES} cycles of every fault on {served.server.setup}"
    assert rss < RSS_LIMIT, f"resident memory grew by {rss / MIB:.1f} MiB {where}"
    assert objects < OBJECTS_PER_CYCLE * CYCLES, f"{objects} more GC-tracked objects {where}"
    assert not leftovers(served)


# --- Disconnects, backpressure and slow clients (RELIABILITY.md E and G) -------------------


def produced(served: Served, token: str) -> int:
    answer = served.good.client.get("/_produced", params={"token": token})
    return int(answer.json()["bytes"])


def produced_when_still(served: Served, token: str) -> int:
    """Bytes the stream made, once three readings 0.1 s apart agree (bounded: 10 s)."""
    readings = [produced(served, token)]
    deadline = time.monotonic() + 10
    while len(readings) < 3 or len(set(readings[-3:])) > 1:
        assert time.monotonic() < deadline, f"the stream never stopped growing: {readings[-3:]}"
        time.sleep(0.1)
        readings.append(produced(served, token))
    return readings[-1]


def test_a_client_that_leaves_a_stream_stops_the_app(served: Served) -> None:
    token = uuid.uuid4().hex
    leave_mid_download(served.server.port, STREAM, token)
    made = produced_when_still(served, token)
    assert made < STREAM // 4, f"the app made {made / MIB:.0f} MiB for a client that left"
    served.good.ok()
    assert not leftovers(served)


def test_a_stalled_reader_holds_back_its_app_and_nobody_else(served: Served) -> None:
    token = uuid.uuid4().hex
    with stalled_reader(served.server.port, STREAM, token):
        made = produced_when_still(served, token)
        served.good.ok()
        served.good.echo()
        served.good.stream()
    # Between the app and the stalled socket: the bridge's bounded queue, the
    # server's buffer (waitress: 16 MiB by default) and the kernel's.
    assert made < 40 * MIB, f"{made / MIB:.0f} MiB made ahead of a client that reads nothing"
    assert not leftovers(served)


def test_slow_uploaders_do_not_hold_up_other_requests(served: Served) -> None:
    hurry = threading.Event()
    started = [threading.Event(), threading.Event()]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        writers = [
            pool.submit(slow_writer, served.server.port, MIB, 256, 0.01, hurry, event)
            for event in started
        ]
        try:
            assert all(event.wait(10) for event in started)
            served.good.ok()
            served.good.echo()
            still_uploading = [not writer.done() for writer in writers]
        finally:
            hurry.set()
        for writer in writers:
            writer.result(30)  # each checks its own echo
    assert still_uploading == [True, True]
    assert not leftovers(served)


def test_each_chunk_reaches_the_client_before_the_next_is_made(served: Served) -> None:
    token = uuid.uuid4().hex

    def release() -> None:
        served.good.client.get("/_release", params={"token": token}).raise_for_status()

    assert gated_stream(served.server.port, token, release) == b"first\nsecond\n"


# --- Lifespan that fails: servers of their own ---------------------------------------------


@pytest.mark.parametrize("setup", ["uvicorn-thread", "uvicorn-greenlet"])
def test_a_failing_startup_under_fallback_stops_uvicorn_naming_the_cause(setup: str) -> None:
    with serving(setup, "failing_lifespan_asgi") as server:
        status = wait_for_exit(server.process, 15)
        log = server.log_text()
    assert status == 3, f"uvicorn still ran, or ended with {status}:\n{log}"
    assert "lifespan startup of app 1 (_lifespan_fails) failed" in log, log  # counted from 0
    assert STARTUP_FAILURE in log, log


@pytest.mark.parametrize("setup", ["waitress", "gunicorn"])
def test_a_failing_startup_makes_every_request_a_500_and_the_server_stays_up(setup: str) -> None:
    with serving(setup, "failing_lifespan_wsgi") as server, GoodClient(server.url) as good:
        assert good.client.get("/ok").status_code == 500
        first = read_settled(good)
        answers = {good.client.get(path).status_code for path in ["/ok", "/stream?size=9"] * 10}
        assert answers == {500}
        now = counts(read_settled(good))
        assert all(now[key] <= value for key, value in counts(first).items()), (first, now)
        log = _log_with(server, STARTUP_FAILURE)
        assert server.process.poll() is None
    assert "lifespan startup of" in log, log
    assert log.count(STARTUP_FAILURE) == 1, "startup ran more than once"


def _log_with(server: Server, text: str) -> str:
    """The server's log once it holds ``text`` (loggers flush on their own time; bounded)."""
    deadline = time.monotonic() + 5
    log = server.log_text()
    while text not in log and time.monotonic() < deadline:
        time.sleep(0.05)
        log = server.log_text()
    return log
