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

import pytest

from tests.apps.fault_apps import STARTUP_FAILURE
from tests.fault_servers import SETUPS, Server, serving, wait_for_exit
from tests.faultclient import (
    COUNTED,
    FAULTS,
    MIB,
    GoodClient,
    above_baseline,
    burst,
    counts,
    gated_stream,
    leave_mid_download,
    slow_writer,
    stalled_reader,
    stalled_upload,
)

N = 4
SETTLE = 5.0
CYCLES = 5
RSS_LIMIT = 8 * MIB
OBJECTS_PER_CYCLE = 40
STREAM = 256 * MIB


@dataclass
class Served:
    server: Server
    good: GoodClient
    baseline: dict[str, int]


def leftovers(served: Served, timeout: float = SETTLE) -> dict[str, tuple[int, int]]:
    return above_baseline(served.good, served.baseline, COUNTED, timeout)


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
        baseline = good.settled()
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
    first = served.good.settled()
    for _ in range(CYCLES):
        one_cycle(served)
    last = served.good.settled()
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


@pytest.mark.parametrize("setup", ["uvicorn-thread", "uvicorn-greenlet"])
def test_a_stalled_upload_gets_408_and_gives_its_worker_back(setup: str) -> None:
    timeout = {"BRIDGE_FAULT_BODY_TIMEOUT": "3"}
    busy = "pool_busy" if setup == "uvicorn-thread" else "greenlets_busy"
    with serving(setup, env=timeout) as server, GoodClient(server.url) as good:
        burst(server.url, 4)  # the pool, or the idle greenlets, as the test will need them
        baseline = good.settled()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            stalled = pool.submit(stalled_upload, server.port)
            while good.accounting(heavy=True)[busy] == 0 and not stalled.done():
                time.sleep(0.05)  # until the app waits in its read (bounded by the 3 s)
            held = good.accounting(heavy=True)[busy]
            good.ok()
            reply = stalled.result(30)
        left = above_baseline(good, baseline, COUNTED, SETTLE)
    assert held == 1, "the stalled upload never reached the app"
    assert (reply.status, reply.complete, reply.headers.get(b"connection")) == (
        408,
        True,
        b"close",
    ), reply
    assert not left, f"after the 408 (baseline, now): {left}"


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
        burst(server.url, 4, "/_sleep?seconds=0.2")  # gunicorn starts its 4 threads as needed
        first = good.settled()
        answers = {good.client.get(path).status_code for path in ["/ok", "/stream?size=9"] * 10}
        assert answers == {500}
        now = counts(good.settled())
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
