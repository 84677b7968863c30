"""to_wsgi against a2wsgi's ASGIMiddleware: an ASGI app under WSGI servers.

Usage::

    .venv/bin/python benchmarks/to_wsgi.py [--quick]

1. In process, µs per hello-world request, called as a WSGI server calls an
   app (one thread, sequential): the floor is the same ASGI app run on a loop
   in the calling thread; then ``bridge.to_wsgi`` and ``a2wsgi.ASGIMiddleware``.
2. End to end, requests/s for a FastAPI hello world under waitress (4
   threads) and gunicorn gthread (1 worker, 4 threads), through each bridge,
   and a plain WSGI hello world on the same server: that server's own cost
   per request, the bound no bridge can pass.

It prints markdown tables and writes ``benchmarks/results/to_wsgi.json`` and
``docs/to_wsgi.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import a2wsgi
import apps
import loadgen
from run import cpus
from server import running_server

import bridge

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "to_wsgi.json"
PLOT = HERE.parent / "docs" / "to_wsgi.png"


async def raw_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": apps.HELLO_BODY})


def environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def per_request(call: Any, calls: int, seconds: float, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        done = 0
        while done < calls and time.perf_counter() < deadline:
            call()
            done += 1
        best = min(best, (time.perf_counter() - started) / max(done, 1) * 1e6)
    return best


def wsgi_call(app: Any) -> Any:
    def call() -> None:
        iterable = app(environ(), start_response)
        b"".join(iterable)
        close = getattr(iterable, "close", None)
        if close is not None:
            close()

    return call


def inprocess(quick: bool) -> dict[str, float]:
    calls, seconds, repeats = (500, 0.3, 2) if quick else (5000, 2.0, 5)
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    def floor() -> None:
        loop.run_until_complete(raw_hello({"type": "http"}, receive, send))

    ours = bridge.to_wsgi(raw_hello)
    results = {
        "ASGI app on a loop in the calling thread (floor)": per_request(
            floor, calls, seconds, repeats
        ),
        "bridge.to_wsgi": per_request(wsgi_call(ours), calls, seconds, repeats),
        "a2wsgi.ASGIMiddleware": per_request(
            wsgi_call(a2wsgi.ASGIMiddleware(raw_hello)), calls, seconds, repeats
        ),
    }
    ours.close()
    loop.close()
    return results


def end_to_end(quick: bool) -> dict[str, dict[str, float]]:
    duration, warmup = (1.0, 0.5) if quick else (5.0, 1.0)
    server_cpu, client_cpu = cpus()
    results: dict[str, dict[str, float]] = {}
    for server in ("waitress", "gunicorn"):
        row = results.setdefault(server, {})
        for label, app in (
            ("plain WSGI hello (bound)", "hello"),
            ("bridge.to_wsgi", "fastapi-bridge"),
            ("a2wsgi", "fastapi-a2wsgi"),
        ):
            try:
                with running_server(server, app, cpu=server_cpu) as running:
                    measured = loadgen.measure(running.port, 32, duration, warmup, client_cpu)
                row[label] = measured["rps"]
            except Exception as error:  # one broken server must not hide the rest
                print(f"  {server} / {label}: {error!r}", file=sys.stderr, flush=True)
                row[label] = float("nan")
            print(f"  {server} / {label}: {row[label]:.0f} req/s", file=sys.stderr, flush=True)
    return results


def report(results: dict[str, Any]) -> str:
    inproc = results["inprocess"]
    floor = inproc["ASGI app on a loop in the calling thread (floor)"]
    a2 = inproc["a2wsgi.ASGIMiddleware"] - floor
    lines = [
        "#### In process, hello world, µs per request\n",
        "| | µs | overhead µs | overhead vs a2wsgi ↓ |",
        "|---|---|---|---|",
    ]
    for name, value in inproc.items():
        overhead = value - floor
        ratio = "—" if "floor" in name else f"{overhead / a2:.2f}"
        lines.append(f"| {name} | {value:.1f} | {overhead:.1f} | {ratio} |")
    lines += [
        "",
        "#### End to end, FastAPI hello world, requests/s (32 connections)\n",
        "| server | plain WSGI hello (bound) | bridge.to_wsgi | a2wsgi "
        "| bridge ÷ a2wsgi ↑ | bridge ÷ bound |",
        "|---|---|---|---|---|---|",
    ]
    for server, row in results["e2e"].items():
        bound, ours, theirs = row["plain WSGI hello (bound)"], row["bridge.to_wsgi"], row["a2wsgi"]
        lines.append(
            f"| {server} | {bound:,.0f} | {ours:,.0f} | {theirs:,.0f} | "
            f"{ours / theirs:.2f} | {ours / bound:.2f} |"
        )
    return "\n".join(lines)


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inproc = results["inprocess"]
    floor = inproc["ASGI app on a loop in the calling thread (floor)"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [name for name in inproc if "floor" not in name]
    left.barh(names, [inproc[name] - floor for name in names], color=["tab:blue", "tab:gray"])
    left.set_title("in process: overhead µs per request, lower is better", fontsize=10)
    servers = list(results["e2e"])
    columns = ["bridge.to_wsgi", "a2wsgi", "plain WSGI hello (bound)"]
    colors = ["tab:blue", "tab:gray", "tab:green"]
    width = 0.25
    for index, (column, color) in enumerate(zip(columns, colors, strict=True)):
        values = [results["e2e"][server][column] for server in servers]
        positions = [place + (index - 1) * width for place in range(len(servers))]
        right.bar(positions, values, width, label=column, color=color)
    right.set_xticks(range(len(servers)), servers)
    right.set_title("end to end: FastAPI hello world, requests/s, higher is better", fontsize=10)
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--plot-only", action="store_true", help=f"redraw from {RESULTS.name}")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(RESULTS.read_text()))
        return
    print(f"$ {' '.join(sys.orig_argv)}\n")
    results = {"inprocess": inprocess(args.quick), "e2e": end_to_end(args.quick)}
    print(report(results))
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    plot(results)


if __name__ == "__main__":
    main()
