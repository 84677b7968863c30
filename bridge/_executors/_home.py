"""Where thread-sensitive calls run: one home per call chain (per request, under ``to_asgi``).

A home is the thread of the chain's outermost ``ThreadJob`` (the worker that
runs a request under the thread executor) while that job waits in
``await_``, and otherwise a thread of the home's own (its sticky thread),
made on first need. Two homes never share a thread.

A thread waiting in ``ThreadJob.await_`` serves other work meanwhile: it
opens a *frame*, a queue it runs calls from until its reply comes. A
thread's open frames form a stack (a nested job opens one above its
caller's); a call goes to the innermost, which is the one the thread is
serving. Offering a call and closing a frame hold the same lock, and the
reply goes into the frame's queue as it closes: every call a frame accepted
runs before its thread leaves ``await_``, and once closed it accepts none.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable
from contextvars import Context, ContextVar, copy_context
from typing import Any, Protocol

import greenlet

from ._base import Executor
from ._job import JobGreenlet, thread_job

Call = Callable[[], None]


class Frames:
    """One thread's open frames; innermost last."""

    __slots__ = ("lock", "open")

    def __init__(self, bottom: queue.SimpleQueue[Any] | None = None) -> None:
        self.lock = threading.Lock()
        self.open: list[queue.SimpleQueue[Any]] = [] if bottom is None else [bottom]

    def offer(self, task: Call) -> bool:
        """Queue ``task`` on the innermost open frame; False when none is open."""
        with self.lock:
            if not self.open:
                return False
            self.open[-1].put(task)
            return True

    def enter(self, calls: queue.SimpleQueue[Any]) -> None:
        """Open a frame; calls still waiting in the one below move up, where they will run."""
        with self.lock:
            if self.open:
                below = self.open[-1]
                while not below.empty():
                    task = below.get_nowait()
                    if task is None:  # a sticky thread's stop signal stays at the bottom
                        below.put(None)
                        break
                    calls.put(task)
            self.open.append(calls)

    def leave(self, calls: queue.SimpleQueue[Any], reply: object) -> None:
        """Close a frame and hand it its reply, which ends its thread's wait."""
        with self.lock:
            self.open.remove(calls)
            calls.put(reply)


class _ThreadFrames(threading.local):
    frames: Frames | None = None


_here = _ThreadFrames()


def frames_here() -> Frames:
    """The calling thread's frames, made on first use."""
    frames = _here.frames
    if frames is None:
        frames = _here.frames = Frames()
    return frames


class Waiter(Protocol):
    """A job whose thread may serve a home's calls while it waits."""

    def offer(self, task: Call) -> bool: ...


class StickyThread:
    """A home's own thread; its idle loop is the bottom frame, so it accepts every call.

    The thread holds only its queue: once nothing refers to this object any
    more (the chain's contexts are gone), a finalizer tells the thread to exit.
    """

    __slots__ = ("__weakref__", "frames", "generation", "thread")

    def __init__(self) -> None:
        tasks: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self.frames = Frames(tasks)
        self.generation = _fork.generation
        self.thread = threading.Thread(
            target=_serve_sticky, args=(self.frames, tasks), name="bridge-sticky", daemon=True
        )
        self.thread.start()
        weakref.finalize(self, tasks.put, None)


def _serve_sticky(frames: Frames, tasks: queue.SimpleQueue[Call | None]) -> None:
    _here.frames = frames
    while True:
        task = tasks.get()
        if task is None:
            return
        task()
        del task  # a finished job must not keep its home alive from this frame


class Home:
    """Where one chain's thread-sensitive calls run; see the module docstring.

    ``waiter`` is the outermost thread job of the chain, while it runs.
    """

    __slots__ = ("_generation", "_sticky", "waiter")

    queue_size = 8

    def __init__(self, waiter: Waiter | None = None) -> None:
        self.waiter = waiter
        self._generation = _fork.generation
        self._sticky: StickyThread | None = None

    def submit(self, task: Call) -> None:
        waiter = self.waiter
        if waiter is not None and self._generation == _fork.generation and waiter.offer(task):
            return
        sticky = self._sticky
        if sticky is None or sticky.generation != _fork.generation:
            with _sticky_lock:
                sticky = self._sticky
                if sticky is None or sticky.generation != _fork.generation:
                    sticky = self._sticky = StickyThread()
        sticky.frames.offer(task)


_sticky_lock = threading.Lock()

home: ContextVar[Home | None] = ContextVar("bridge_thread_home", default=None)
"""The home of the chain this context belongs to."""


def request_context(executor: Executor) -> Context:
    """A copy of the current context that starts a chain: one request, one home.

    A thread executor's request job becomes its request's home itself; a
    greenlet has no thread to offer, so its request gets a home of its own.
    """
    context = copy_context()
    context.run(home.set, None if executor.multithread else Home())
    return context


class _Fork:
    generation = 0


_fork = _Fork()


def _after_fork_in_child() -> None:
    # The child has one thread, the one that forked. Its frames, its job, and
    # every home's threads belong to the parent, whose loops the child cannot
    # drive: the child starts as plain sync code.
    global _here, _sticky_lock
    _fork.generation += 1
    _here = _ThreadFrames()
    _sticky_lock = threading.Lock()  # another thread may have held it at the fork
    thread_job.job = None
    current = greenlet.getcurrent()
    if type(current) is JobGreenlet:
        current.job = None


os.register_at_fork(after_in_child=_after_fork_in_child)
