"""Run as a script: fork from inside a bridge worker; the child crosses back to async code.

Prints one line per case, ``<case> <child exit status>``; 0 means the child
got the right answer. A child that hangs is killed after a few seconds (-9).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import bridge


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


async def _answer_through_a_thread() -> int:
    return await bridge.sync_to_async(lambda: 41, thread_sensitive=True)() + 1


def _fork_and_cross(crossing: Callable[[], int]) -> int:
    """In the worker: fork; the child crosses and exits; the parent reaps it, within a bound."""
    pid = os.fork()
    if pid == 0:  # the child
        signal.alarm(5)  # a hung child ends itself as well
        try:
            code = 0 if crossing() == 42 else 1
        except BaseException:
            code = 2
        os._exit(code)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def _crossings() -> dict[str, Callable[[], int]]:
    return {
        "async_to_sync": bridge.async_to_sync(_answer),
        "await_": lambda: bridge.await_(_answer()),
        "thread_sensitive": bridge.async_to_sync(_answer_through_a_thread),
        "sync_to_async": lambda: bridge.await_(bridge.sync_to_async(lambda: 42)()),
    }


async def _main() -> None:
    for name, crossing in _crossings().items():
        for how, wrap in (
            ("thread", lambda f: bridge.sync_to_async(f)),
            ("sensitive", lambda f: bridge.sync_to_async(f, thread_sensitive=True)),
            ("greenlet", lambda f: bridge.sync_to_async(f, executor="greenlet")),
        ):
            # Warm the chain up first, so the worker has state worth leaking.
            await bridge.sync_to_async(lambda: None, thread_sensitive=True)()
            result: Any = await wrap(lambda crossing=crossing: _fork_and_cross(crossing))()
            print(f"{name}/{how} {result}", flush=True)


if __name__ == "__main__":
    threading.excepthook = lambda args: None
    asyncio.run(_main())
    sys.exit(0)
