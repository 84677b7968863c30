"""Mailboxes a server thread waits on: plain threads in process, gevent in a patched child."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bridge._executors._waiting import gevent_patched, new_mailbox, start_os_thread


def test_without_gevent_a_mailbox_is_a_plain_queue() -> None:
    assert not gevent_patched()
    mailbox = new_mailbox()
    start_os_thread(lambda: mailbox.put(threading.get_native_id()), "putter")
    assert mailbox.get(timeout=5) != threading.get_native_id()
    with pytest.raises(queue.Empty):
        mailbox.get(timeout=0.01)


GEVENT_CHILD = """
import gevent.monkey
gevent.monkey.patch_all()
import queue, threading, time, gevent
from bridge._executors._waiting import gevent_patched, new_mailbox, start_os_thread

assert gevent_patched()
boxes = [new_mailbox() for _ in range(16)]
ticks = []
put_at = []

def ticker():
    while len(ticks) < 20:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)

def putter():
    time.sleep(0.3)  # the original sleep: this is a real OS thread
    put_at.append((time.monotonic(), threading.get_native_id()))
    for box in boxes:
        box.put(threading.get_native_id())

start_os_thread(putter, "putter")
tick = gevent.spawn(ticker)
waiters = [gevent.spawn(box.get, timeout=5) for box in boxes]
started = time.monotonic()
gevent.joinall(waiters + [tick], timeout=10)
put_time, putter_thread = put_at[0]
assert putter_thread != threading.get_native_id()
assert [waiter.value for waiter in waiters] == [putter_thread] * 16
assert time.monotonic() - started < 2, "the waiters were not woken when the items came"
early = [at for at in ticks if at < put_time]
assert len(early) >= 10, f"the hub was blocked while greenlets waited: {len(early)} ticks"
try:
    new_mailbox().get(timeout=0.05)
except queue.Empty:
    print("ok")
"""


def test_under_gevent_greenlets_wait_without_blocking_the_hub() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", GEVENT_CHILD],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.stdout.strip() == "ok", completed.stderr
