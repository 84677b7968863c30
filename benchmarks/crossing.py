"""Per-call cost of crossing between sync and async code, against the usual tools.

Usage::

    .venv/bin/python benchmarks/crossing.py [--quick]

Three tables, all from one run, µs per call (best of several repeats, each
bounded in calls and in time):

1. sync -> async, one awaitable per call: ``bridge.await_`` in a greenlet of
   the greenlet executor, SQLAlchemy's ``await_only`` in ``greenlet_spawn``,
   greenback's ``await_``; ``bridge.await_`` from a thread-executor worker;
   ``bridge.async_to_sync`` and asgiref's ``async_to_sync`` from a plain thread.
   Each with an awaitable that finishes at once and one that suspends once
   (``asyncio.sleep(0)``).
2. async -> sync, one call of a function that returns at once:
   ``bridge.sync_to_async`` (thread, thread-sensitive, greenlet), asgiref's
   ``sync_to_async`` (both modes), ``anyio.to_thread.run_sync``,
   ``loop.run_in_executor``.
3. A Flask ``async def`` hello-world view, stock (asgiref: a new loop per
   request) against ``bridge.flask_async_views``, under a WSGI caller (the
   Flask test client) and under ``to_asgi`` with each executor.

It prints markdown tables and writes ``benchmarks/results/crossing.json`` and
``docs/crossing.png``. In process only: no sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import asgiref.sync
import greenback
import inprocess
from flask import Flask
from sqlalchemy.util import await_only, greenlet_spawn

import bridge
from bridge._executors import GreenletExecutor

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "crossing.json"
PLOT = HERE.parent / "docs" / "crossing.png"


class Budget:
    """How many calls per repeat, how many seconds at most, how many repeats."""

    def __init__(self, quick: bool) -> None:
        self.calls = 2_000 if quick else 20_000
        self.seconds = 0.2 if quick else 1.0
        self.repeats = 2 if quick else 5


def per_call(loop_body: Callable[[int, float], tuple[int, float]], budget: Budget) -> float:
    """Best µs per call over the repeats; ``loop_body(calls, deadline)`` -> (done, seconds)."""
    best = float("inf")
    for _ in range(budget.repeats):
        done, seconds = loop_body(budget.calls, time.perf_counter() + budget.seconds)
        best = min(best, seconds / max(done, 1) * 1e6)
    return best


def sync_loop(call: Callable[[], object]) -> Callable[[int, float], tuple[int, float]]:
    def body(calls: int, deadline: float) -> tuple[int, float]:
        started = time.perf_counter()
        done = 0
        while done < calls and time.perf_counter() < deadline:
            call()
            done += 1
        return done, time.perf_counter() - started

    return body


async def async_loop(
    call: Callable[[], Awaitable[object]], calls: int, deadline: float
) -> tuple[int, float]:
    started = time.perf_counter()
    done = 0
    while done < calls and time.perf_counter() < deadline:
        await call()
        done += 1
    return done, time.perf_counter() - started


async def immediate() -> int:
    return 1


async def suspends() -> int:
    await asyncio.sleep(0)
    return 1


def noop() -> int:
    return 1


# --- 1. sync -> async ----------------------------------------------------------------------


def sync_to_async_side(budget: Budget) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    kinds = {"finishes at once": immediate, "suspends once": suspends}

    async def in_loop() -> None:
        greenlet_executor = GreenletExecutor()
        await greenback.ensure_portal()
        for kind, make in kinds.items():
            rows.setdefault("bridge.await_ (greenlet executor)", {})[kind] = await _in_job(
                greenlet_executor, sync_loop(lambda make=make: bridge.await_(make())), budget
            )
            rows.setdefault("SQLAlchemy await_only (greenlet_spawn)", {})[
                kind
            ] = await greenlet_spawn(
                per_call, sync_loop(lambda make=make: await_only(make())), budget
            )
            rows.setdefault("greenback.await_ (portal)", {})[kind] = per_call(
                sync_loop(lambda make=make: greenback.await_(make())), budget
            )
            rows.setdefault("bridge.await_ (thread executor worker)", {})[
                kind
            ] = await bridge.sync_to_async(per_call)(
                sync_loop(lambda make=make: bridge.await_(make())), budget
            )

    asyncio.run(in_loop())
    for kind, make in kinds.items():
        bridged = bridge.async_to_sync(make)
        rows.setdefault("bridge.async_to_sync (plain thread)", {})[kind] = _in_thread(
            sync_loop(bridged), budget
        )
        stock = asgiref.sync.async_to_sync(make)
        rows.setdefault("asgiref async_to_sync (plain thread)", {})[kind] = _in_thread(
            sync_loop(stock), budget
        )
    return rows


async def _in_job(executor: GreenletExecutor, body: Any, budget: Budget) -> float:
    async def no_items(item: object) -> None:
        raise AssertionError(item)

    job = executor.job(
        lambda job: per_call(body, budget), no_items, contextvars.copy_context(), "bench"
    )
    result: float = await job.run()
    return result


def _in_thread(body: Any, budget: Budget) -> float:
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(per_call(body, budget)))
    thread.start()
    thread.join(120)
    return result[0]


# --- 2. async -> sync ----------------------------------------------------------------------


def async_to_sync_side(budget: Budget) -> dict[str, float]:
    rows: dict[str, float] = {}

    async def measure(name: str, call: Callable[[], Awaitable[object]]) -> None:
        best = float("inf")
        for _ in range(budget.repeats):
            done, seconds = await async_loop(
                call, budget.calls, time.perf_counter() + budget.seconds
            )
            best = min(best, seconds / max(done, 1) * 1e6)
        rows[name] = best

    async def in_loop() -> None:
        loop = asyncio.get_running_loop()
        await measure("bridge.sync_to_async (thread)", bridge.sync_to_async(noop))
        await measure(
            "bridge.sync_to_async (thread, thread_sensitive)",
            bridge.sync_to_async(noop, thread_sensitive=True),
        )
        await measure(
            "bridge.sync_to_async (greenlet)", bridge.sync_to_async(noop, executor="greenlet")
        )
        await measure(
            "asgiref sync_to_async (thread_sensitive=False)",
            asgiref.sync.sync_to_async(noop, thread_sensitive=False),
        )
        await measure(
            "asgiref sync_to_async (thread_sensitive=True)",
            asgiref.sync.sync_to_async(noop, thread_sensitive=True),
        )
        await measure("anyio.to_thread.run_sync", lambda: anyio.to_thread.run_sync(noop))
        await measure("loop.run_in_executor", lambda: loop.run_in_executor(None, noop))

    asyncio.run(in_loop())
    return rows


# --- 3. Flask async views ------------------------------------------------------------------


def flask_app(through_bridge: bool, loop: str = "server") -> Flask:
    app = Flask("crossing")

    @app.get("/")
    async def hello() -> str:
        return "Hello, world!"

    return bridge.flask_async_views(app, loop=loop) if through_bridge else app


def flask_views(budget: Budget) -> dict[str, dict[str, float | None]]:
    """µs per request, stock and through bridge, for each way of serving Flask.

    Variants take turns, one repeat each, so that a slow spell of the machine
    lands on all of them instead of on whichever ran then.
    """
    clients = {label: flask_app(label == "bridge").test_client() for label in ("stock", "bridge")}
    wsgi = _best_of_turns(
        {label: sync_loop(lambda c=client: c.get("/")) for label, client in clients.items()},
        budget,
    )
    # Stock async views cannot run in a greenlet on the loop (asgiref refuses): the
    # greenlet row compares bridge there with stock views on the thread executor.
    served = _asgi_best_of_turns(
        {
            "stock": bridge.to_asgi(flask_app(False), executor="thread"),
            "server": bridge.to_asgi(flask_app(True), executor="thread"),
            "thread": bridge.to_asgi(flask_app(True, loop="thread"), executor="thread"),
            "greenlet": bridge.to_asgi(flask_app(True), executor="greenlet"),
        },
        budget,
    )
    stock = served["stock"]
    return {
        "WSGI caller (Flask test client)": {"stock": wsgi["stock"], "bridge": wsgi["bridge"]},
        "to_asgi, thread executor": {"stock": stock, "bridge": served["server"]},
        "to_asgi, thread executor, loop='thread'": {"stock": stock, "bridge": served["thread"]},
        "to_asgi, greenlet executor": {"stock": stock, "bridge": served["greenlet"]},
    }


def _best_of_turns(
    bodies: dict[str, Callable[[int, float], tuple[int, float]]], budget: Budget
) -> dict[str, float]:
    best = dict.fromkeys(bodies, float("inf"))
    for _ in range(budget.repeats):
        for name, body in bodies.items():
            done, seconds = body(budget.calls // 10, time.perf_counter() + budget.seconds)
            best[name] = min(best[name], seconds / max(done, 1) * 1e6)
    return best


def _asgi_best_of_turns(apps: dict[str, Any], budget: Budget) -> dict[str, float]:
    scope = inprocess._scope()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"the app answered {message['status']}")

    async def run() -> dict[str, float]:
        best = dict.fromkeys(apps, float("inf"))
        for _ in range(budget.repeats):
            for name, app in apps.items():
                done, seconds = await async_loop(
                    lambda a=app: a(dict(scope), receive, send),
                    budget.calls // 10,
                    time.perf_counter() + budget.seconds,
                )
                best[name] = min(best[name], seconds / max(done, 1) * 1e6)
        return best

    return asyncio.run(run())


# --- report --------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    parts = []
    one = results["sync_to_async_side"]
    kinds = ["finishes at once", "suspends once"]
    sqla = one["SQLAlchemy await_only (greenlet_spawn)"]
    parts.append("#### 1. Sync code awaiting one awaitable, µs per call\n")
    parts.append(
        table(
            ["caller", *[f"{k} µs" for k in kinds], *[f"vs SQLAlchemy, {k}" for k in kinds]],
            [
                [
                    name,
                    *[f"{row[k]:.2f}" for k in kinds],
                    *[f"{row[k] / sqla[k]:.2f}" for k in kinds],
                ]
                for name, row in one.items()
            ],
        )
    )
    two = results["async_to_sync_side"]
    base = two["asgiref sync_to_async (thread_sensitive=False)"]
    parts.append("\n\n#### 2. Async code calling a sync function, µs per call\n")
    parts.append(
        table(
            ["caller", "µs", "vs asgiref (thread_sensitive=False)"],
            [[name, f"{value:.1f}", f"{value / base:.2f}"] for name, value in two.items()],
        )
    )
    three = results["flask_views"]
    parts.append("\n\n#### 3. Flask `async def` hello world, µs per request (in process)\n")
    parts.append(
        table(
            ["served by", "stock async views µs", "bridge.flask_async_views µs", "speed-up"],
            [
                [
                    name,
                    f"{row['stock']:.1f}",
                    f"{row['bridge']:.1f}",
                    f"{row['stock'] / row['bridge']:.1f}x",
                ]
                for name, row in three.items()
            ],
        )
    )
    parts.append(
        "\nStock async views fail under the greenlet executor (asgiref refuses to run on the "
        "loop's thread), so its row compares with stock views on the thread executor; so "
        "does the `loop='thread'` row, where each worker runs views on its own loop."
    )
    return "\n".join(parts)


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = results["sync_to_async_side"]
    two = results["async_to_sync_side"]
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 5))
    panels = [
        (
            left,
            one,
            lambda row: row["suspends once"],
            "sync -> async: µs per await_ (suspends once)",
        ),
        (right, two, lambda value: value, "async -> sync: µs per call"),
    ]
    for axis, rows, pick, title in panels:
        names = list(rows)
        axis.barh(names, [pick(rows[name]) for name in names], color=_colors(names))
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(title + ", lower is better", fontsize=10)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=100)


def _colors(names: list[str]) -> list[str]:
    return ["tab:blue" if name.startswith("bridge") else "tab:gray" for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--plot-only", action="store_true", help=f"redraw the plot from {RESULTS.name}"
    )
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(RESULTS.read_text()))
        return
    warnings.simplefilter("ignore", DeprecationWarning)
    print(f"$ {' '.join(sys.orig_argv)}\n")
    budget = Budget(args.quick)
    started = time.monotonic()
    results: dict[str, Any] = {
        "sync_to_async_side": sync_to_async_side(budget),
        "async_to_sync_side": async_to_sync_side(budget),
        "flask_views": flask_views(budget),
    }
    results["seconds"] = round(time.monotonic() - started, 1)
    print(report(results))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    plot(results)
    print(
        f"\nWrote {RESULTS.relative_to(HERE.parent)} and {PLOT.relative_to(HERE.parent)} "
        f"in {results['seconds']} s"
    )


if __name__ == "__main__":
    main()
