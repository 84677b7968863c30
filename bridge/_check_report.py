"""The readiness report of ``bridge check``: what worked, what broke, which executor suits."""

from __future__ import annotations

import dataclasses

from ._detect import Interface


@dataclasses.dataclass
class Probe:
    method: str
    path: str
    chunked: bool = False

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

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 500 and not self.problems


def report(target: str, interface: Interface, runs: dict[str, list[Result]]) -> tuple[str, bool]:
    """The readiness report, and whether the app is ready to serve through the bridge."""
    lines = [f"bridge check: {target} ({interface.upper()} app)", ""]
    for name, results in runs.items():
        lines.append(f"  {name}")
        for result in results:
            mark = "ok  " if result.ok else "FAIL"
            status = "no response" if result.status is None else str(result.status)
            line = f"    {mark}  {result.probe.label:<32} {status}"
            if result.status is not None and result.probe.method != "HEAD":
                line += f" ({result.size} bytes)"
            lines.append(line)
            lines.extend(f"          cause: {problem}" for problem in result.problems)
            lines.extend(f"          blocked: {where}" for where in result.blocked)
        lines.append("")
    verdict, ready = _verdict(interface, runs)
    lines.append(verdict)
    return "\n".join(lines), ready


def _verdict(interface: Interface, runs: dict[str, list[Result]]) -> tuple[str, bool]:
    if interface == "asgi":
        results = runs["through to_wsgi"]
        failed = sum(not result.ok for result in results)
        if not failed:
            return (
                "Ready: every request worked through bridge.to_wsgi under wsgiref.validate. "
                "Serve it on uvicorn directly, or on a WSGI server with bridge.to_wsgi(app).",
                True,
            )
        return f"Not ready: {failed} of {len(results)} requests fail (causes above).", False
    thread, greenlet = runs["thread executor"], runs["greenlet executor"]
    failed = sum(not result.ok for result in thread)
    readiness = (
        f"Not ready: {failed} of {len(thread)} requests fail under the thread executor "
        "(causes above)."
        if failed
        else "Ready: every request worked through bridge.to_asgi under wsgiref.validate."
    )
    return readiness + " " + _executor_advice(thread, greenlet), not failed


def _executor_advice(thread: list[Result], greenlet: list[Result]) -> str:
    reasons = []
    blocked = [result.probe.label for result in greenlet if result.blocked]
    if blocked:
        reasons.append("it blocks in I/O outside await_ (" + ", ".join(blocked) + ")")
    for before, after in zip(thread, greenlet, strict=True):
        if before.ok and not after.ok:
            cause = after.problems[0] if after.problems else f"status {after.status}"
            if "async_to_sync" in cause:
                reasons.append(f"it calls asgiref's async_to_sync ({after.probe.label})")
            else:
                reasons.append(f"{after.probe.label} fails there: {cause}")
    if reasons:
        return "Use executor='thread' (the default), because " + "; ".join(reasons) + "."
    return (
        "No request blocked the loop, so executor='greenlet' suits the paths checked (no "
        "threads; do I/O through bridge.await_); executor='thread' is the safe choice for "
        "code paths not checked here."
    )
