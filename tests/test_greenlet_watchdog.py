"""A greenlet stuck on what only another suspended request can release is reported, not silent.

One request holds a threading.Lock across ``await_``; the next, on the same
loop thread, waits for it and so holds the loop: nothing else can run, the
first request can never release it, and the block warning (logged when a
stretch ends) never comes. The watchdog thread reports it while it lasts,
naming the request and the line it waits on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any

import anyio
import pytest

import bridge
from bridge import GreenletExecutor, to_asgi
from bridge._executors import _watchdog
from tests.harness import FakeServer, make_scope

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Reports(logging.Handler):
    """Keeps the watchdog's reports; the first one frees the stuck request."""

    def __init__(self, escape: threading.Event) -> None:
        super().__init__(logging.ERROR)
        self.escape = escape
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "still does" in record.getMessage():
            self.messages.append(record.getMessage())
            self.escape.set()


async def test_a_request_stuck_on_a_lock_held_across_await_is_reported() -> None:
    lock = threading.Lock()
    escape = threading.Event()  # set by the report: what a human would do, kill the process
    outcomes: dict[str, bool] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/holder":
            with lock:
                bridge.await_(asyncio.sleep(0.2))  # the second request arrives meanwhile
        else:
            got, tries = False, 0
            while not got and not escape.is_set() and tries < 200:  # lock.acquire(), bounded
                got = lock.acquire(timeout=0.05)
                tries += 1
            outcomes["waiter got the lock"] = got
            if got:
                lock.release()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    reports = _Reports(escape)
    logger = logging.getLogger("bridge")
    logger.addHandler(reports)
    try:
        wrapped = to_asgi(app, executor=GreenletExecutor(block_warning=0.02))
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(FakeServer(wrapped).request, make_scope("/holder"))
                await anyio.sleep(0.05)
                group.start_soon(FakeServer(wrapped).request, make_scope("/waiter"))
    finally:
        logger.removeHandler(reports)
    assert outcomes == {"waiter got the lock": False}  # freed by the report, not by the holder
    assert len(reports.messages) == 1, reports.messages
    message = reports.messages[0]
    assert "GET '/waiter'" in message
    assert "lock.acquire(timeout=0.05)" in message  # where it waits, from its stack
    assert "use the thread executor" in message


def test_a_stretch_is_reported_once_and_only_past_its_limit() -> None:
    stretch = _watchdog.watch(block_warning=1000.0)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("bridge")
    logger.addHandler(handler)
    try:
        stretch.label, stretch.started = "GET '/short'", _watchdog.time.perf_counter()
        _watchdog.look()
        assert records == []  # within its limit
        stretch.label, stretch.started = "GET '/long'", _watchdog.time.perf_counter() - 20000
        _watchdog.look()
        _watchdog.look()
        stretch.started = 0.0
        _watchdog.look()
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1 and "GET '/long'" in records[0]


def test_the_report_reads_other_threads_frames_with_the_collector_held_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython holds its thread-list lock while ``sys._current_frames()`` builds frames; a
    collection started there that frees a ``threading.local`` takes the lock again and every
    thread hangs for good (seen in CI on 3.11.7). The watchdog must not let one start there."""
    collector_on_while_reading: list[bool] = []
    real = _watchdog.sys._current_frames

    def current_frames() -> dict[int, Any]:
        collector_on_while_reading.append(gc.isenabled())
        return real()

    monkeypatch.setattr(_watchdog.sys, "_current_frames", current_frames)
    stretch = _watchdog.watch(block_warning=1000.0)
    logger = logging.getLogger("bridge")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    assert gc.isenabled()
    try:
        stretch.label, stretch.started = "GET '/long'", _watchdog.time.perf_counter() - 20000
        _watchdog.look()
    finally:
        stretch.started = 0.0
        logger.removeHandler(handler)
    assert collector_on_while_reading == [False]
    assert gc.isenabled()  # and it is back on afterwards
