"""Concurrent requests compared with the same requests sent one at a time.

Each request carries its own query string and cookie (``bridge_check=N``), so
an app that keeps per-request state where concurrent requests share it
(a ``threading.local`` under greenlets, a module global anywhere) answers one
request with another's data. Sent together, the requests interleave wherever
the app suspends (``await_``) or its threads run side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ._check_report import COUNT, Headers, Interleaved, Probe, Result, with_cookies

Drive = Callable[[Probe, Result], Coroutine[Any, Any, None]]


def variants(path: str, headers: Headers) -> list[Probe]:
    joiner = "&" if "?" in path else "?"
    return [
        Probe(
            "GET",
            f"{path}{joiner}bridge_check={n}",
            headers=with_cookies(headers, [f"bridge_check={n}"]),
        )
        for n in range(1, COUNT + 1)
    ]


def _answer(result: Result) -> tuple[int | None, bytes]:
    return result.status, bytes(result.body)


async def _together(drive: Drive, probes: list[Probe]) -> list[Result]:
    results = [Result(probe) for probe in probes]
    pairs = zip(probes, results, strict=True)
    await asyncio.gather(*(drive(probe, result) for probe, result in pairs))
    return results


def interleave(drive: Drive, path: str, headers: Headers) -> Interleaved:
    """Send the variants of ``path`` one at a time twice, then all at once, and compare."""
    probes = variants(path, headers)
    outcome = Interleaved(path)
    alone = []
    for _ in range(2):
        results = [Result(probe) for probe in probes]
        for probe, result in zip(probes, results, strict=True):
            asyncio.run(drive(probe, result))
        alone.append([_answer(result) for result in results])
    if any(status is None or status >= 500 for status, _ in alone[0]):
        outcome.not_compared = "it fails even alone"
        return outcome
    if alone[0] != alone[1]:
        outcome.not_compared = "the same request alone got different answers"
        return outcome
    expected = alone[0]
    together = [_answer(result) for result in asyncio.run(_together(drive, probes))]
    for number, (got, wanted) in enumerate(zip(together, expected, strict=True), start=1):
        if got == wanted:
            continue
        others = [n for n, answer in enumerate(expected, start=1) if answer == got and n != number]
        if others:
            meant = " or ".join(f"bridge_check={n}" for n in others)
            outcome.wrong.append(f"bridge_check={number} got the answer meant for {meant}")
        else:
            outcome.wrong.append(
                f"bridge_check={number} got status {got[0]} and {len(got[1])} bytes, "
                f"not the {wanted[0]} and {len(wanted[1])} bytes it gets alone"
            )
    return outcome
