"""A thread that reports a greenlet stuck holding the loop, naming its request and where it waits.

The block warning is logged when a greenlet gives the loop back, so a greenlet
that never does says nothing: one blocked on what only another suspended
greenlet can release (a ``threading.Lock`` held across ``await_`` by one
request and acquired by the next, a pool or queue at its limit) hangs the
whole server silently. Each loop thread's current stretch is published in a
:class:`Stretch` (two attribute stores per greenlet switch); this thread looks
at them a few times a second and logs, once per stretch, one that has lasted
far longer than ``block_warning``, with the stack the greenlet is stuck in.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from types import FrameType

logger = logging.getLogger("bridge")

STUCK_FACTOR = 10  # a stretch this many times block_warning is reported while it lasts
_PERIOD = 0.25  # seconds between looks; the thread costs nothing on the requests' path
_STACK_LINES = 8


class Stretch:
    """What one loop thread's greenlet is doing: its job's label, since when (0: not running)."""

    __slots__ = ("__weakref__", "label", "reported", "started", "stuck_after", "thread")

    def __init__(self, stuck_after: float) -> None:
        self.thread = threading.get_ident()
        self.stuck_after = stuck_after
        self.label = ""
        self.started = 0.0
        self.reported = 0.0


_stretches: weakref.WeakSet[Stretch] = weakref.WeakSet()
_guard = threading.Lock()
_watcher: threading.Thread | None = None


def watch(block_warning: float) -> Stretch:
    """A stretch for the calling thread, watched for as long as it is referenced."""
    global _watcher
    stretch = Stretch(max(block_warning * STUCK_FACTOR, _PERIOD))
    with _guard:
        _stretches.add(stretch)
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch_forever, name="bridge-watchdog", daemon=True)
            _watcher.start()
    return stretch


def _watch_forever() -> None:
    while True:
        time.sleep(_PERIOD)
        look()


def look() -> None:
    """Report each stretch that has lasted past its limit and was not reported yet."""
    now = time.perf_counter()
    with _guard:
        stretches = list(_stretches)
    for stretch in stretches:
        label, started = stretch.label, stretch.started
        if not started or now - started <= stretch.stuck_after or stretch.reported == started:
            continue
        stretch.reported = started
        frame = _frames_of_all_threads().get(stretch.thread)
        where = "".join(traceback.format_stack(frame)[-_STACK_LINES:]) if frame else "(unknown)\n"
        logger.error(
            "the greenlet for %s has held the event loop for %.1f s and still does: nothing else "
            "runs on this loop until it returns. It is probably waiting for something only "
            "another request can release (a threading.Lock held across await_, a connection "
            "pool or queue at its limit); use the thread executor for such code. It waits in:\n%s",
            label,
            now - started,
            where.rstrip("\n"),
        )


def _frames_of_all_threads() -> dict[int, FrameType]:
    """``sys._current_frames()`` with the collector held off while it runs.

    CPython holds its lock on the list of threads while it builds the frames;
    a collection that starts there and frees a ``threading.local`` (the
    executors keep their idle workers in one) takes that lock again, and this
    thread and every other one then wait for ever (seen on 3.11.7, in CI).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


def _restart_after_fork() -> None:
    global _guard, _watcher
    _guard = threading.Lock()  # another thread may have held it at the fork
    _watcher = None  # the child has no watchdog thread
    if _stretches:
        _watcher = threading.Thread(target=_watch_forever, name="bridge-watchdog", daemon=True)
        _watcher.start()


os.register_at_fork(after_in_child=_restart_after_fork)
