"""Soak: each server setup under minutes of normal traffic mixed with faults, then the accounting.

Usage::

    .venv/bin/python benchmarks/soak.py [--duration 180] [--quick] [--setup NAME]

For each setup of ``tests/fault_servers.py`` (uvicorn + ``to_asgi`` with each
executor, waitress and gunicorn + ``to_wsgi``), in a process of its own:

1. Warm up (every request kind and fault once, then 16 requests at once so
   pools reach their size) and take a settled baseline from ``/_accounting``.
2. For ``--duration`` seconds: 4 well-behaved clients (``/ok``, ``/echo``,
   ``/stream``, each answer checked) and 2 fault clients that cycle through
   every fault of ``tests/faultclient.py`` (apps that raise at each point, that
   never start or never finish a response; clients that leave mid-upload,
   mid-download or before the response, slow readers, slow writers). Every
   ``SAMPLE`` s (more often in short runs) the server's memory and objects
   are sampled.
3. Stop the clients, let the server settle, and compare with the baseline.

A setup fails if a well-behaved client saw an error, a faulty client got a
wrong answer, anything counted is above its baseline after settling (threads
outside the bridge's pool, busy pool workers, busy greenlets, tasks, file
descriptors), the server died, or resident memory or the count of GC-tracked
objects rose over the second half of the run by more than ``RSS_SLOPE_LIMIT``
or ``OBJECTS_SLOPE_LIMIT`` per minute (least-squares slope; the servers run
with ``MALLOC_ARENA_MAX=2``, see ``MALLOC_ARENAS``). Lifespan
failures are tested on servers of their own in ``tests/test_faults_e2e.py``.

Prints a markdown table, writes ``benchmarks/results/soak.json`` (not with
``--quick`` unless ``--output`` is given) and exits 1 if any setup failed.
Loopback only; every client call has a timeout and every loop an end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fault_servers import SETUPS, serving  # noqa: E402
from tests.faultclient import COUNTED, FAULTS, MIB, GoodClient, above_baseline, burst  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak.json"
GOOD_CLIENTS = 4
FAULT_CLIENTS = 2
SAMPLE = 5.0
SETTLE = 15.0
RSS_SLOPE_LIMIT = 2 * MIB  # bytes per minute, over the second half of the run
OBJECTS_SLOPE_LIMIT = 500  # GC-tracked objects per minute, over the second half
# Busy workers, tasks, descriptors and threads outside the pool are leaks when
# above the baseline. The pool and the idle greenlets may grow with the peak
# concurrency (they are kept for reuse) and are reported, not judged.
JUDGED = ("threads_outside_pool", "pool_busy", "greenlets_busy", "tasks", "fds")
GOOD_MIX = ("ok", "ok", "echo", "ok", "stream")
# glibc gives each thread that allocates its own arena (up to 8 per CPU), and each
# grows to its own high-water mark: under waitress (5 threads) resident memory
# climbs for two or three minutes before it levels off, which a short run would
# read as a trend. Two arenas keep that climb small; --malloc-arenas 0 shows it.
MALLOC_ARENAS = 2


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Tally:
    """Counts and the first few error messages, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.examples: list[str] = []

    def add(self, kind: str, error: BaseException | None = None) -> None:
        with self.lock:
            self.counts[kind] += 1
            if error is not None:
                self.errors[kind] += 1
                if len(self.examples) < 5:
                    self.examples.append(f"{kind}: {type(error).__name__}: {error}"[:300])


def one_request(good: GoodClient, kind: str) -> None:
    if kind == "ok":
        good.ok()
    elif kind == "echo":
        good.echo(64 * 1024)
    else:
        good.stream()


def good_client(url: str, stop: threading.Event, tally: Tally) -> None:
    good = GoodClient(url)
    turn = 0
    try:
        while not stop.is_set():
            kind = GOOD_MIX[turn % len(GOOD_MIX)]
            turn += 1
            try:
                one_request(good, kind)
            except Exception as error:  # every error a well-behaved client sees is counted
                tally.add(kind, error)
                good.close()
                good = GoodClient(url)  # a fresh connection, as a real client would retry on
            else:
                tally.add(kind)
    finally:
        good.close()


def fault_client(port: int, offset: int, stop: threading.Event, tally: Tally) -> None:
    kinds = list(FAULTS)
    turn = offset
    while not stop.is_set():
        kind = kinds[turn % len(kinds)]
        turn += 1
        try:
            FAULTS[kind](port)
        except Exception as error:  # the faulty client got a wrong answer
            tally.add(kind, error)
        else:
            tally.add(kind)
        stop.wait(0.01)


def slope_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, value) pairs, per minute; 0 for fewer than 3."""
    if len(samples) < 3:
        return 0.0
    count = len(samples)
    mean_t = sum(t for t, _ in samples) / count
    mean_v = sum(v for _, v in samples) / count
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread


def soak(setup: str, duration: float, arenas: int) -> dict[str, Any]:
    log(f"== {setup}: {duration:.0f} s")
    env = {"MALLOC_ARENA_MAX": str(arenas)} if arenas else {}
    with serving(setup, env=env) as server, GoodClient(server.url) as probe:
        probe.ok()
        probe.echo()
        probe.stream()
        for fault in FAULTS.values():
            fault(server.port)
        burst(server.url, 16)
        baseline = probe.settled()
        good, faults, stop = Tally(), Tally(), threading.Event()
        threads = [
            threading.Thread(target=good_client, args=(server.url, stop, good), daemon=True)
            for _ in range(GOOD_CLIENTS)
        ] + [
            threading.Thread(
                target=fault_client, args=(server.port, 5 * i, stop, faults), daemon=True
            )
            for i in range(FAULT_CLIENTS)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        samples: list[dict[str, int | float]] = []
        every = min(SAMPLE, duration / 12)  # a dozen samples at least, for the slope
        while (elapsed := time.monotonic() - started) < duration:
            time.sleep(min(every, max(0.0, duration - elapsed)))
            reading = probe.accounting(heavy=True)
            samples.append({"t": round(time.monotonic() - started, 1), **reading})
            log(
                f"  {samples[-1]['t']:6.1f} s  rss {reading['rss'] / MIB:6.1f} MiB  "
                f"objects {reading['objects']}  served {sum(good.counts.values())} good, "
                f"{sum(faults.counts.values())} faults"
            )
        stop.set()
        for thread in threads:
            thread.join(30)
        stuck = sum(thread.is_alive() for thread in threads)
        leaks = above_baseline(probe, baseline, JUDGED, SETTLE)
        end = probe.settled()
        alive = server.process.poll() is None
    return judge(setup, duration, baseline, end, samples, good, faults, leaks, stuck, alive)


def judge(
    setup: str,
    duration: float,
    baseline: dict[str, int],
    end: dict[str, int],
    samples: list[dict[str, int | float]],
    good: Tally,
    faults: Tally,
    leaks: dict[str, tuple[int, int]],
    stuck: int,
    alive: bool,
) -> dict[str, Any]:
    second_half = [s for s in samples if float(s["t"]) >= duration / 2]
    rss_slope = slope_per_minute([(float(s["t"]), int(s["rss"])) for s in second_half])
    objects_slope = slope_per_minute([(float(s["t"]), int(s["objects"])) for s in second_half])
    problems = [f"well-behaved clients saw {sum(good.errors.values())} errors"] * bool(good.errors)
    problems += [f"faulty clients got {sum(faults.errors.values())} wrong answers"] * bool(
        faults.errors
    )
    problems += [f"{name} above its baseline: {b} -> {n}" for name, (b, n) in leaks.items()]
    problems += [f"{stuck} client threads did not stop"] * bool(stuck)
    problems += ["the server died"] * (not alive)
    if rss_slope > RSS_SLOPE_LIMIT:
        problems.append(f"RSS rose by {rss_slope / MIB:.2f} MiB/min over the second half")
    if objects_slope > OBJECTS_SLOPE_LIMIT:
        problems.append(f"GC-tracked objects rose by {objects_slope:.0f}/min over the second half")
    keys = ("threads", "pool_threads", "greenlets", "rss", "objects", *COUNTED)
    return {
        "setup": setup,
        "duration_s": duration,
        "requests_served": sum(good.counts.values()) + sum(faults.counts.values()),
        "good_requests": dict(good.counts),
        "good_errors": dict(good.errors),
        "faults_injected": dict(faults.counts),
        "fault_wrong_answers": dict(faults.errors),
        "error_examples": good.examples + faults.examples,
        "accounting_start": {key: baseline.get(key, 0) for key in dict.fromkeys(keys)},
        "accounting_end": {key: end.get(key, 0) for key in dict.fromkeys(keys)},
        "rss_samples_mib": [(s["t"], round(int(s["rss"]) / MIB, 2)) for s in samples],
        "rss_slope_mib_per_min": round(rss_slope / MIB, 3),
        "objects_slope_per_min": round(objects_slope, 1),
        "problems": problems,
        "passed": not problems,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| setup | served | faults | good errors | threads | fds | tasks | RSS MiB "
        "| RSS slope MiB/min | objects/min | result |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- | ---: | ---: | --- |",
    ]
    for r in results:
        start, end = r["accounting_start"], r["accounting_end"]

        def change(key: str, start: dict[str, int] = start, end: dict[str, int] = end) -> str:
            return f"{start[key]} -> {end[key]}"

        rss = f"{start['rss'] / MIB:.1f} -> {end['rss'] / MIB:.1f}"
        lines.append(
            f"| {r['setup']} | {r['requests_served']} | {sum(r['faults_injected'].values())} "
            f"| {sum(r['good_errors'].values())} | {change('threads')} | {change('fds')} "
            f"| {change('tasks')} | {rss} | {r['rss_slope_mib_per_min']:+.2f} "
            f"| {r['objects_slope_per_min']:+.0f} | {'pass' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds per setup")
    parser.add_argument("--quick", action="store_true", help="15 s per setup, no results file")
    parser.add_argument("--setup", choices=SETUPS, action="append", help="only this setup")
    parser.add_argument("--output", type=Path, help=f"results file (default {RESULTS})")
    parser.add_argument(
        "--malloc-arenas",
        type=int,
        default=MALLOC_ARENAS,
        help=f"MALLOC_ARENA_MAX for the servers (default {MALLOC_ARENAS}; 0: glibc's own)",
    )
    args = parser.parse_args()
    duration = 15.0 if args.quick else args.duration
    output = args.output or (None if args.quick else RESULTS)
    results = [soak(setup, duration, args.malloc_arenas) for setup in args.setup or SETUPS]
    print(table(results))
    for result in results:
        for problem in result["problems"]:
            print(f"{result['setup']}: {problem}")
    if output is not None:
        document = {
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
            "clients": {"good": GOOD_CLIENTS, "fault": FAULT_CLIENTS},
            "malloc_arena_max": args.malloc_arenas or "glibc default",
            "setups": results,
        }
        output.write_text(json.dumps(document, indent=1) + "\n")
        log(f"wrote {output}")
    return 0 if all(result["passed"] for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
