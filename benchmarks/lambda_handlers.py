"""aws_lambda against Mangum (ASGI) and apig-wsgi (WSGI): µs per invocation, in process.

Usage::

    .venv/bin/python benchmarks/lambda_handlers.py [--quick]

Each handler gets the same event again and again, as a warm Lambda
environment does, for a hello-world app with no framework (so the adapter's
cost is most of what is measured) and for the same app in FastAPI or Flask.
Mangum runs with ``lifespan="off"`` like bridge's ``lifespan=False``: with it
on, Mangum runs the whole lifespan around every invocation, which is a
different job (its row is printed for reference). The variants take turns in
every round, so machine noise lands on all of them alike; the best round counts.

It prints a markdown table and writes ``benchmarks/results/lambda.json`` and
``docs/lambda.png``. ``--steps`` instead prints what each step of bridge's
WSGI path costs, by replacing one step at a time with its precomputed result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apps
from apig_wsgi import make_lambda_handler
from mangum import Mangum

import bridge

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "lambda.json"
PLOT = HERE.parent / "docs" / "lambda.png"
HOST = "abc123.execute-api.eu-west-1.amazonaws.com"

EVENTS: dict[str, dict[str, Any]] = {
    "HTTP API (2.0)": {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "a=1",
        "headers": {"host": HOST, "user-agent": "bench", "accept": "*/*"},
        "requestContext": {
            "domainName": HOST,
            "http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
            "stage": "$default",
        },
        "isBase64Encoded": False,
    },
    "REST (1.0)": {
        "resource": "/{proxy+}",
        "path": "/",
        "httpMethod": "GET",
        "headers": {"Host": HOST, "User-Agent": "bench", "Accept": "*/*"},
        "multiValueHeaders": {"Host": [HOST], "User-Agent": ["bench"], "Accept": ["*/*"]},
        "queryStringParameters": {"a": "1"},
        "multiValueQueryStringParameters": {"a": ["1"]},
        "requestContext": {"path": "/", "stage": "prod", "identity": {"sourceIp": "1.2.3.4"}},
        "body": None,
        "isBase64Encoded": False,
    },
}
# What a browser's request looks like after API Gateway added its own headers:
# per-header costs weigh more than in the three-header events above.
EVENTS["HTTP API (2.0), browser headers"] = {
    **EVENTS["HTTP API (2.0)"],
    "headers": {
        "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "accept-encoding": "gzip, deflate, br",
        "accept-language": "en-GB,en;q=0.9",
        "content-length": "0",
        "host": HOST,
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    },
    "cookies": ["session=abc123", "theme=dark"],
}


def variants() -> dict[str, dict[str, Callable[[Any, Any], Any]]]:
    fastapi_app = apps.make_fastapi_app()
    flask_app = apps.make_flask_app()
    return {
        "ASGI hello, no framework": {
            "bridge.aws_lambda": bridge.aws_lambda(apps.raw_asgi_hello, lifespan=False),
            "Mangum": Mangum(apps.raw_asgi_hello, lifespan="off"),
        },
        "FastAPI hello": {
            "bridge.aws_lambda": bridge.aws_lambda(fastapi_app, lifespan=False),
            "Mangum": Mangum(fastapi_app, lifespan="off"),
            "Mangum, lifespan on (reference)": Mangum(fastapi_app, lifespan="auto"),
        },
        "WSGI hello, no framework": {
            "bridge.aws_lambda": bridge.aws_lambda(apps.hello_app),
            "apig-wsgi": make_lambda_handler(apps.hello_app),
        },
        "Flask hello": {
            "bridge.aws_lambda": bridge.aws_lambda(flask_app),
            "apig-wsgi": make_lambda_handler(flask_app),
        },
    }


def measure(quick: bool) -> dict[str, dict[str, dict[str, float]]]:
    calls, rounds = (300, 3) if quick else (3000, 7)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for event_name, event in EVENTS.items():
        for app_name, handlers in variants().items():
            best = dict.fromkeys(handlers, float("inf"))
            for handler in handlers.values():  # warm up: first invocations start things
                for _ in range(20):
                    assert handler(event, None)["statusCode"] == 200
            for _ in range(rounds):
                for name, handler in handlers.items():
                    best[name] = min(best[name], _per_call(handler, event, calls))
            results.setdefault(event_name, {})[app_name] = best
    return results


def _per_call(handler: Callable[[Any, Any], Any], event: dict[str, Any], calls: int) -> float:
    deadline = time.perf_counter() + 5.0
    started = time.perf_counter()
    done = 0
    while done < calls and time.perf_counter() < deadline:
        handler(event, None)
        done += 1
    return (time.perf_counter() - started) / done * 1e6


def steps() -> str:
    """The cost of each step of a WSGI invocation: the total less the total without it."""
    import bridge._lambda._handler as handler_module
    from bridge._lambda._calls import call_wsgi
    from bridge._lambda._events import read_event, reply_form
    from bridge._lambda._replies import reply
    from bridge._lambda._requests import wsgi_environ

    event = EVENTS["HTTP API (2.0)"]
    handler = bridge.aws_lambda(apps.hello_app)
    handler(event, None)
    form = reply_form(event)
    request = read_event(event, form, None, None)
    environ = wsgi_environ(request, handler._environ_builder)
    response = call_wsgi(apps.hello_app, dict(environ), 10**6)
    answer = reply(request, response, handler.text_types, 10**6)
    fakes: dict[str, tuple[str, Callable[..., Any]]] = {
        "reply_form": ("find the event source and reply form", lambda *_: form),
        "read_event": ("read the event into a request", lambda *_: request),
        "wsgi_environ": ("build the environ", lambda *_: dict(environ)),
        "call_wsgi": ("run the app under the response rules", lambda *_: response),
        "reply": ("shape the reply for the source", lambda *_: answer),
    }

    def best() -> float:
        return min(_per_call(handler, event, 20000) for _ in range(7))

    total = best()
    lines = ["| step | µs |", "|---|---|"]
    for name, (label, fake) in fakes.items():
        real = getattr(handler_module, name)
        setattr(handler_module, name, fake)
        try:
            lines.append(f"| {label} | {total - best():.2f} |")
        finally:
            setattr(handler_module, name, real)
    lines.append(f"| the whole invocation | {total:.2f} |")
    return "\n".join(lines)


def report(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| event | app | bridge µs | other adapter | its µs | bridge ÷ other ↓ |",
        "|---|---|---|---|---|---|",
    ]
    for event_name, by_app in results.items():
        for app_name, row in by_app.items():
            ours = row["bridge.aws_lambda"]
            for other, value in row.items():
                if other == "bridge.aws_lambda":
                    continue
                lines.append(
                    f"| {event_name} | {app_name} | {ours:.1f} | {other} | {value:.1f} | "
                    f"{ours / value:.2f} |"
                )
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_app = results["HTTP API (2.0)"]
    labels, ours, theirs, names = [], [], [], []
    for app_name, row in by_app.items():
        other = next(name for name in row if name != "bridge.aws_lambda")
        labels.append(app_name)
        ours.append(row["bridge.aws_lambda"])
        theirs.append(row[other])
        names.append(other)
    figure, axis = plt.subplots(figsize=(9, 4))
    positions = range(len(labels))
    axis.barh([p + 0.2 for p in positions], ours, 0.4, label="bridge.aws_lambda", color="tab:blue")
    axis.barh(
        [p - 0.2 for p in positions], theirs, 0.4, label="Mangum / apig-wsgi", color="tab:gray"
    )
    axis.set_yticks(list(positions), [f"{a}\n(vs {n})" for a, n in zip(labels, names, strict=True)])
    axis.set_xlabel("µs per invocation, HTTP API event, lower is better")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--plot-only", action="store_true", help=f"redraw from {RESULTS.name}")
    parser.add_argument("--steps", action="store_true", help="the cost of each step, WSGI")
    args = parser.parse_args()
    if args.steps:
        print(steps())
        return
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
