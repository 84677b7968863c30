"""Turn the results into markdown tables and a bar chart of the ratios to a2wsgi.

Tables give each number with its ratio to a2wsgi's, ``value / a2wsgi``: for
times (µs, seconds) lower is better (↓), for rates (req/s, MiB/s) higher is
better (↑); every ratio column says which. The chart puts everything one way,
"speed relative to a2wsgi", higher is better, on a log scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from apps import ADAPTERS, BASELINE
from inprocess import FLOOR_ASGI, FLOOR_WSGI

Row = Sequence[str]


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0 or value <= 0:
        return None
    return value / base


def _ratio_text(value: float | None, base: float | None) -> str:
    ratio = _ratio(value, base)
    return "—" if ratio is None else f"{ratio:.2f}"


def _table(header: Row, rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- Part 1 ---------------------------------------------------------------------------------


def overheads(inproc: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """µs per request above the raw ASGI floor, per adapter and mode."""
    floor = inproc[FLOOR_ASGI]
    return {
        name: {mode: inproc[name][mode] - floor[mode] for mode in floor}
        for name in ADAPTERS
        if name in inproc
    }


def inprocess_table(inproc: dict[str, dict[str, float]]) -> str:
    over = overheads(inproc)
    base, base_over = inproc[BASELINE], over[BASELINE]
    rows = []
    for name in (FLOOR_WSGI, FLOOR_ASGI, *ADAPTERS):
        row = [name]
        for mode in ("sequential", "concurrent"):
            row += [_num(inproc[name][mode]), _ratio_text(inproc[name][mode], base[mode])]
        for mode in ("sequential", "concurrent"):
            value = over.get(name, {}).get(mode)
            row += [_num(value), _ratio_text(value, base_over[mode])]
        rows.append(row)
    header = [
        "adapter",
        "sequential µs/req",
        "vs a2wsgi ↓",
        "32 concurrent µs/req",
        "vs a2wsgi ↓",
        "overhead seq µs",
        "vs a2wsgi overhead ↓",
        "overhead 32-conc µs",
        "vs a2wsgi overhead ↓",
    ]
    return _table(header, rows)


# --- Part 2 ---------------------------------------------------------------------------------

FAILURES = {"errors": "non-200 responses", "reconnects": "connections dropped by the server"}


def e2e_table(e2e: dict[str, dict[str, Any]]) -> str:
    base = e2e.get(BASELINE, {}).get("rps")
    rows = []
    for name, result in e2e.items():
        server = "uvicorn + " + name if name in ADAPTERS else name + " (native WSGI)"
        notes = [f"{result[key]} {text}" for key, text in FAILURES.items() if result.get(key)]
        note = result.get("error", "") or ", ".join(notes)
        rows.append(
            [server, _num(result.get("rps"), 0), _ratio_text(result.get("rps"), base), note]
        )
    return _table(["server", "req/s", "vs a2wsgi ↑", "notes"], rows)


# --- Part 3 ---------------------------------------------------------------------------------


def _rate(result: dict[str, Any]) -> str:
    outcome = result.get("outcome", "")
    if outcome == "ok":
        return _num(result["mib_s"], 0)
    return outcome if outcome == "timeout" else "error"


def stream_table(stream: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = []
    header = ["adapter"]
    for scenario in stream:
        header += [f"{scenario} MiB/s", "vs a2wsgi ↑", "peak RSS +MiB"]
    for name in ADAPTERS:
        row = [name]
        for results in stream.values():
            result, base = results.get(name, {}), results.get(BASELINE, {})
            row += [
                _rate(result),
                _ratio_text(result.get("mib_s"), base.get("mib_s")),
                _num(result.get("rss_growth_mib")),
            ]
        rows.append(row)
    return _table(header, rows)


# --- Part 4 ---------------------------------------------------------------------------------


def await_table(awaits: dict[str, dict[str, Any]], requests: int) -> str:
    base = awaits.get(BASELINE, {}).get("seconds")
    rows = [
        [
            name,
            f"`{r['view']}`",
            "timeout" if r["seconds"] is None else f"{r['seconds']:.3f}",
            _ratio_text(r["seconds"], base),
        ]
        for name, r in awaits.items()
    ]
    return _table(["adapter", "view", f"wall s, {requests} concurrent", "vs a2wsgi ↓"], rows)


# --- The chart ------------------------------------------------------------------------------


def _speedups(results: dict[str, Any]) -> list[tuple[str, dict[str, float | None]]]:
    """(panel title, {name: speed relative to a2wsgi}); higher is better everywhere."""

    def faster(values: dict[str, float | None]) -> dict[str, float | None]:  # times
        return {name: _ratio(values.get(BASELINE), value) for name, value in values.items()}

    def more(values: dict[str, float | None]) -> dict[str, float | None]:  # rates
        return {name: _ratio(value, values.get(BASELINE)) for name, value in values.items()}

    panels: list[tuple[str, dict[str, float | None]]] = []
    if "inprocess" in results:
        inproc = results["inprocess"]
        over = overheads(inproc)
        for mode, label in (("sequential", "sequential"), ("concurrent", "32 concurrent")):
            panels.append(
                (f"in-process µs/req, {label}", faster({n: inproc[n][mode] for n in ADAPTERS}))
            )
            panels.append(
                (f"in-process overhead, {label}", faster({n: over[n][mode] for n in ADAPTERS}))
            )
    if "e2e" in results:
        panels.append(
            ("end-to-end req/s (Flask)", more({n: r.get("rps") for n, r in results["e2e"].items()}))
        )
    for scenario, per in results.get("stream", {}).items():
        panels.append((f"{scenario} MiB/s", more({n: r.get("mib_s") for n, r in per.items()})))
    if "await" in results:
        panels.append(
            ("await case wall time", faster({n: r["seconds"] for n, r in results["await"].items()}))
        )
    return panels


def _panel(axis: Any, title: str, values: dict[str, float | None]) -> None:
    names = list(values)[::-1]
    heights = [values[name] or 0.0 for name in names]
    colors = ["tab:blue" if name.startswith("bridge") else "tab:gray" for name in names]
    axis.barh(names, heights, color=colors, left=0.0)
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=8)
    for index, height in enumerate(heights):
        text = f"{height:.2f}x" if height else "timeout/error"
        axis.text((height or 0.06) * 1.05, index, text, va="center", fontsize=7)
    positive = [h for h in heights if h > 0] or [1.0]
    axis.set_xlim(min(0.05, min(positive) / 2), max(positive) * 4)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _speedups(results)
    if not panels:
        return
    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(12, 2.4 * rows), squeeze=False)
    for axis, (title, values) in zip(axes.flat, panels, strict=False):
        _panel(axis, title, values)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle("Speed relative to a2wsgi (higher is better; log scale; 1 = a2wsgi)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(results: dict[str, Any], emit: Callable[[str], None]) -> None:
    """Every table for the parts that ran."""
    if "inprocess" in results:
        emit("\n### 1. In-process, hello world, µs per request (fake ASGI server)\n")
        emit(inprocess_table(results["inprocess"]))
    if "e2e" in results:
        emit(f"\n### 2. End-to-end, Flask hello world, requests/s ({results['config']['e2e']})\n")
        emit(e2e_table(results["e2e"]))
    if "stream" in results:
        emit(f"\n### 3. Streaming through uvicorn ({results['config']['stream']})\n")
        emit(stream_table(results["stream"]))
    if "await" in results:
        emit("\n### 4. A view that waits 50 ms, in-process\n")
        emit(await_table(results["await"], results["config"]["await_requests"]))
