"""A real Django project under uvicorn: through bridge.to_asgi against Django's own ASGI handler.

Usage::

    .venv/bin/python benchmarks/django_bench.py [--quick]

The project is ``benchmarks/django_site`` (startproject's settings and middleware
stack, SQLite, one model). Two views: ``/`` answers "Hello, world!" and
``/items`` runs two queries (a count and ten rows). Each is served by

* uvicorn with ``bridge.to_asgi(application)`` (the thread executor),
* uvicorn with Django's own ``get_asgi_application()``,
* gunicorn gthread (1 worker, 4 threads) serving the WSGI application natively,

each in its own process pinned to one CPU, with the load generator pinned to
the other: requests/s and the p99 latency over 32 keep-alive connections.
It prints a markdown table and writes ``benchmarks/results/django.json`` and
``docs/django.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import loadgen
from run import cpus
from server import http_choice, running_server

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "django.json"
PLOT = HERE.parent / "docs" / "django.png"
CONNECTIONS = 32
SERVERS = {  # label: (server, adapter)
    "bridge.to_asgi (thread), uvicorn": ("uvicorn", "bridge thread"),
    "Django's get_asgi_application(), uvicorn": ("uvicorn", "django-asgi"),
    "gunicorn gthread, WSGI natively": ("gunicorn", ""),
}
VIEWS = {"hello": "/", "two queries": "/items"}


def measure(quick: bool) -> dict[str, dict[str, dict[str, Any]]]:
    duration, warmup = (1.0, 0.5) if quick else (5.0, 1.0)
    server_cpu, client_cpu = cpus()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-django-") as folder:
        os.environ["BRIDGE_DJANGO_DB"] = str(Path(folder) / "site.sqlite3")  # the servers inherit
        for label, (server, adapter) in SERVERS.items():
            row = results.setdefault(label, {})
            for view, path in VIEWS.items():
                try:
                    with running_server(
                        server, "django", adapter, cpu=server_cpu, http=http_choice()
                    ) as running:
                        row[view] = loadgen.measure(
                            running.port, CONNECTIONS, duration, warmup, client_cpu, path, True
                        )
                except Exception as error:  # one broken server must not hide the rest
                    row[view] = {"rps": None, "error": repr(error)[:200]}
                print(f"  {label} / {view}: {row[view]}", file=sys.stderr, flush=True)
    return results


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    django = results["Django's get_asgi_application(), uvicorn"]
    lines = [
        f"#### Django, requests/s and p99 ms ({CONNECTIONS} connections)\n",
        "| served by | view | req/s | p99 ms | req/s ÷ Django's ASGI ↑ | errors |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in results.items():
        for view, measured in row.items():
            base = django[view].get("rps")
            rps = measured.get("rps")
            ratio = f"{rps / base:.1f}" if rps and base else "—"
            lines.append(
                f"| {label} | {view} | {_number(rps)} | {_number(measured.get('p99_ms'), 1)} "
                f"| {ratio} | {measured.get('errors', '—')} |"
            )
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = ["tab:blue", "tab:gray", "tab:green"]
    width = 0.25
    for axis, key, title in (
        (left, "rps", "requests/s, higher is better"),
        (right, "p99_ms", "p99 latency ms, lower is better"),
    ):
        for index, (label, color) in enumerate(zip(results, colors, strict=True)):
            values = [results[label][view].get(key) or 0 for view in VIEWS]
            positions = [place + (index - 1) * width for place in range(len(VIEWS))]
            axis.bar(positions, values, width, label=label, color=color)
        axis.set_xticks(range(len(VIEWS)), list(VIEWS))
        axis.set_title(f"Django project: {title}", fontsize=10)
    left.legend(fontsize=8)
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
    results = measure(args.quick)
    print(report(results))
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    plot(results)


if __name__ == "__main__":
    main()
