"""The readiness report of ``bridge check``: what worked, what broke, which executor suits."""

from __future__ import annotations

import dataclasses

from ._detect import Interface

Headers = tuple[tuple[str, str], ...]

COUNT = 5  # concurrent requests per GET path
_KEPT = 1 << 20  # bytes of each answer kept, to compare concurrent answers with sequential ones


def with_cookies(headers: Headers, cookies: list[str]) -> Headers:
    """``headers`` with ``cookies`` (``name=value``) joined into their one Cookie header."""
    given = [value for name, value in headers if name.lower() == "cookie"]
    rest = tuple((name, value) for name, value in headers if name.lower() != "cookie")
    joined = "; ".join(given + cookies)
    return (*rest, ("Cookie", joined)) if joined else rest


@dataclasses.dataclass
class Probe:
    method: str
    path: str
    chunked: bool = False
    headers: Headers = ()

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" + (" (chunked upload)" if self.chunked else "")


@dataclasses.dataclass
class Result:
    probe: Probe
    status: int | None = None
    size: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    blocked: list[str] = dataclasses.field(default_factory=list)
    body: bytearray = dataclasses.field(default_factory=bytearray)

    def add_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.body += chunk[: max(0, _KEPT - len(self.body))]

    @property
    def untested(self) -> bool:
        """The app answered 4xx itself (CSRF, login, no such path): its code was not reached."""
        return self.status is not None and 400 <= self.status < 500 and not self.problems

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400 and not self.problems


@dataclasses.dataclass
class Interleaved:
    """How ``COUNT`` concurrent GETs of one path compared with the same GETs one at a time."""

    path: str
    not_compared: str = ""  # why the answers were not compared
    wrong: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.wrong

    @property
    def label(self) -> str:
        return f"{COUNT} at once: GET {self.path}"


def report(
    target: str,
    interface: Interface,
    runs: dict[str, list[Result]],
    concurrent: dict[str, list[Interleaved]] | None = None,
    state: list[str] | None = None,
) -> tuple[str, bool]:
    """The readiness report, and whether the app is ready to serve through the bridge."""
    concurrent = concurrent or {}
    lines = [f"bridge check: {target} ({interface.upper()} app)", ""]
    for name, results in runs.items():
        lines.append(f"  {name}")
        for result in results:
            mark = "ok  " if result.ok else "--  " if result.untested else "FAIL"
            status = "no response" if result.status is None else str(result.status)
            line = f"    {mark}  {result.probe.label:<32} {status}"
            if result.status is not None and result.probe.method != "HEAD":
                line += f" ({result.size} bytes)"
            if result.untested:
                line += ": the app's own refusal, so this was not tested"
            lines.append(line)
            lines.extend(f"          cause: {problem}" for problem in result.problems)
            lines.extend(f"          blocked: {where}" for where in result.blocked)
        for mixed in concurrent.get(name, []):
            mark = "--  " if mixed.not_compared else "ok  " if mixed.ok else "FAIL"
            if mixed.not_compared:
                outcome = f"not compared: {mixed.not_compared}"
            else:
                outcome = "same answers as one at a time" if mixed.ok else "answers mixed up"
            lines.append(f"    {mark}  {mixed.label:<32} {outcome}")
            lines.extend(f"          {wrong}" for wrong in mixed.wrong)
        lines.append("")
    if state:
        lines.append("  thread-affine state found")
        lines.extend(f"    {found}" for found in state)
        lines.append("")
    verdict, ready = _verdict(interface, runs, concurrent, state or [])
    lines.append(verdict)
    return "\n".join(lines), ready


def _untested(results: list[Result]) -> str:
    refused = [f"{result.probe.label} ({result.status})" for result in results if result.untested]
    if not refused:
        return ""
    return (
        f" Not tested: the app itself refused {len(refused)} of {len(results)} requests ("
        + ", ".join(refused)
        + "); pass what it needs with --header and --cookie (a session, a CSRF token) "
        "or --path one it serves."
    )


def _verdict(
    interface: Interface,
    runs: dict[str, list[Result]],
    concurrent: dict[str, list[Interleaved]],
    state: list[str],
) -> tuple[str, bool]:
    if interface == "asgi":
        results = runs["through to_wsgi"]
        failed = sum(not result.ok and not result.untested for result in results)
        untested = _untested(results)
        if not failed:
            return (
                ("Ready" if not untested else "Ready as far as tested")
                + ": every request the app answered worked through bridge.to_wsgi under "
                "wsgiref.validate. Serve it on uvicorn directly, or on a WSGI server with "
                "bridge.to_wsgi(app)." + untested,
                any(result.ok for result in results),
            )
        failing = f"Not ready: {failed} of {len(results)} requests fail (causes above)."
        return failing + untested, False
    thread, greenlet = runs["thread executor"], runs["greenlet executor"]
    failed = sum(not result.ok and not result.untested for result in thread)
    mixed = [item for item in concurrent.get("thread executor", []) if not item.ok]
    untested = _untested(thread)
    if failed or mixed:
        readiness = f"Not ready: {failed} of {len(thread)} requests fail under the thread executor"
        if mixed:
            paths = ", ".join(item.label for item in mixed)
            readiness += f", and concurrent requests get each other's answers ({paths})"
        readiness += " (causes above)."
    elif untested:
        readiness = (
            "Ready as far as tested: every request the app answered worked through "
            "bridge.to_asgi under wsgiref.validate."
        )
    else:
        readiness = "Ready: every request worked through bridge.to_asgi under wsgiref.validate."
    advice = _executor_advice(thread, greenlet, concurrent.get("greenlet executor", []), state)
    ready = not failed and not mixed and any(result.ok for result in thread)
    return readiness + untested + " " + advice, ready


def _executor_advice(
    thread: list[Result], greenlet: list[Result], mixed: list[Interleaved], state: list[str]
) -> str:
    reasons = []
    blocked = [result.probe.label for result in greenlet if result.blocked]
    if blocked:
        reasons.append("it blocks in I/O outside await_ (" + ", ".join(blocked) + ")")
    for before, after in zip(thread, greenlet, strict=True):
        if before.ok and not after.ok and not after.untested:
            cause = after.problems[0].rstrip(".") if after.problems else f"status {after.status}"
            if "async_to_sync" in cause:
                reasons.append(f"it calls asgiref's async_to_sync ({after.probe.label})")
            else:
                reasons.append(f"{after.probe.label} fails there: {cause}")
    wrong = [item.label for item in mixed if not item.ok]
    if wrong:
        reasons.append(
            "concurrent requests get each other's answers under greenlets ("
            + ", ".join(wrong)
            + ")"
        )
    if state:
        reasons.append(
            "it keeps thread-affine state, which the requests on the loop's one thread would "
            "share (" + "; ".join(state) + ")"
        )
    if reasons:
        return "Use executor='thread' (the default), because " + "; ".join(reasons) + "."
    return (
        "No request blocked the loop, concurrent requests kept their own answers and no "
        "thread-affine state was found, so executor='greenlet' suits the paths checked (no "
        "threads; do I/O through bridge.await_); executor='thread' is the safe choice for "
        "code paths not checked here."
    )
