"""Benchmark bridge against a2wsgi, asgiref and starlette's WSGI middleware.

Usage::

    .venv/bin/python benchmarks/run.py [--quick] [--only inprocess|e2e|stream|await]

Four parts, all in one run:

1. ``inprocess``: µs per request for a hello-world WSGI app driven by a fake
   ASGI server, sequential and 32 at a time, against raw WSGI and raw ASGI floors.
2. ``e2e``: requests/s for a Flask hello world under uvicorn through each
   adapter, and natively under waitress and gunicorn (gthread).
3. ``stream``: MiB/s and the server's peak-RSS growth for a big download,
   a big upload and a download by a slow client.
4. ``await``: wall time for 500 concurrent requests whose view waits 50 ms
   (``bridge.await_(asyncio.sleep(0.05))``; ``time.sleep`` for a2wsgi).

It prints markdown tables and writes ``benchmarks/results/latest.json`` and
``docs/benchmarks.png``. Everything listens on 127.0.0.1 only, on ports the
kernel picks; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import e2e
import inprocess
import report
import streaming
from server import http_choice

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
PLOT = HERE.parent / "docs" / "benchmarks.png"
PARTS = ("inprocess", "e2e", "stream", "await")
MiB = 1024 * 1024


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpus() -> tuple[int, int]:
    """(server CPU, client CPU): two different CPUs when there are two, else no pinning."""
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else (-1, -1)


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Run this process (the streaming client) on ``cpu`` for a while."""
    before = os.sched_getaffinity(0)
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def settings(quick: bool) -> dict[str, Any]:
    server_cpu, client_cpu = cpus()
    http = http_choice()
    return {
        "inprocess": inprocess.InProcessSettings(
            requests=400 if quick else 4000,
            budget=0.3 if quick else 2.0,
            repeats=3 if quick else 7,
            await_requests=500,
            await_repeats=1 if quick else 3,
            await_timeout=30.0 if quick else 60.0,
        ),
        "e2e": e2e.E2ESettings(
            duration=1.0 if quick else 5.0,
            warmup=0.5 if quick else 1.0,
            connections=32,
            server_cpu=server_cpu,
            client_cpu=client_cpu,
            http=http,
        ),
        "stream": streaming.StreamSettings(
            size=(32 if quick else 256) * MiB,
            timeout=15.0 if quick else 60.0,
            repeats=1 if quick else 3,
            server_cpu=server_cpu,
            http=http,
        ),
    }


def describe(chosen: dict[str, Any]) -> dict[str, Any]:
    e, s, i = chosen["e2e"], chosen["stream"], chosen["inprocess"]
    loader = "wrk -t1" if shutil.which("wrk") else "built-in asyncio load generator"
    pin = (
        f"server on CPU {e.server_cpu}, client on CPU {e.client_cpu}"
        if e.server_cpu >= 0
        else "no pinning"
    )
    return {
        "inprocess": f"up to {i.requests} requests or {i.budget} s per repeat, best of {i.repeats}",
        "e2e": f"uvicorn --loop asyncio --http {e.http}; {loader}, {e.connections} connections, "
        f"{e.duration:g} s after {e.warmup:g} s warm-up; {pin}",
        "stream": f"uvicorn --http {s.http}; {s.size // MiB} MiB in 64 KiB chunks, best of "
        f"{s.repeats}, timeout {s.timeout:g} s each; slow client sleeps 5 ms per MiB; {pin}",
        "await_requests": i.await_requests,
    }


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def run_parts(parts: list[str], chosen: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    client_cpu = chosen["e2e"].client_cpu
    for part in parts:
        started = time.monotonic()
        log(f"== {part}")
        if part == "inprocess":
            results["inprocess"] = inprocess.run_inprocess(chosen["inprocess"], log)
        elif part == "e2e":
            results["e2e"] = e2e.run_e2e(chosen["e2e"], log)
        elif part == "stream":
            with pinned(client_cpu):
                results["stream"] = streaming.run_streaming(chosen["stream"], log)
        elif part == "await":
            results["await"] = inprocess.run_await(chosen["inprocess"], log)
        log(f"== {part} took {time.monotonic() - started:.1f} s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark bridge against other WSGI-to-ASGI adapters."
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: a smoke test under a minute"
    )
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run only this part (repeatable)"
    )
    args = parser.parse_args()
    command = " ".join(sys.orig_argv)
    print(f"$ {command}\n")
    chosen = settings(args.quick)
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": command,
        "quick": args.quick,
        "machine": machine(),
        "config": describe(chosen),
    }
    results |= run_parts(args.only or list(PARTS), chosen)
    results["seconds"] = round(time.monotonic() - started, 1)
    info = results["machine"]
    print(f"Machine: {info['nproc']} CPUs ({info['processor']}), Python {info['python']}, ", end="")
    print(info["platform"])
    report.markdown(results, print)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    report.plot(results, PLOT)
    print(
        f"\nWrote {RESULTS.relative_to(HERE.parent)} and {PLOT.relative_to(HERE.parent)} "
        f"in {results['seconds']} s"
    )


if __name__ == "__main__":
    main()
