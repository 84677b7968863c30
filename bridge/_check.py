"""``bridge check``: a readiness report from a handful of requests driven in process.

A WSGI app runs through ``to_asgi`` under ``wsgiref.validate``, once per
executor; an ASGI app runs through ``to_wsgi`` under ``wsgiref.validate``.
Only GET and HEAD by default: POST and chunked uploads reach the app's real
code, so they need ``--write``. Problems come from what the bridge logs
while each request runs (errors with their cause, a greenlet that held the
loop), so the report names the same causes a server's log would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import wsgiref.util
import wsgiref.validate
from collections.abc import Iterable, Iterator
from typing import Any

from ._check_interleave import interleave
from ._check_report import Headers, Interleaved, Probe, Result, report, with_cookies
from ._check_state import own_modules, thread_affine_state
from ._detect import Interface, interface_of
from ._errors import ConfigurationError
from ._executors import GreenletExecutor, ThreadExecutor
from ._to_asgi import to_asgi
from ._to_wsgi import to_wsgi

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BODY = b"bridge check: a small request body\n"


class _Recorder(logging.Handler):
    """Collects what is logged while one request runs: the bridge's and the app's own."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: dict[int, logging.LogRecord] = {}  # by id: a record may reach two loggers

    def emit(self, record: logging.LogRecord) -> None:
        self.records.setdefault(id(record), record)


def request_headers(headers: list[str], cookies: list[str]) -> Headers:
    """``--header 'Name: value'`` and ``--cookie name=value``, checked, as header pairs."""
    pairs = []
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip() or name.strip() != name or not _TOKEN.fullmatch(name):
            raise ConfigurationError(
                f"--header {header!r} is not of the form 'Name: value' (for example "
                "--header 'X-CSRFToken: abc123')"
            )
        pairs.append((name, value.strip()))
    for cookie in cookies:
        name, equals, _ = cookie.partition("=")
        if not equals or not _TOKEN.fullmatch(name) or ";" in cookie:
            raise ConfigurationError(
                f"--cookie {cookie!r} is not of the form name=value (one cookie each; for "
                "example --cookie sessionid=abc123)"
            )
    return with_cookies(tuple(pairs), cookies)


def probes(paths: list[str], write: bool, headers: Headers = ()) -> list[Probe]:
    """The sequential probes; ``headers`` (--header, --cookie) go with every one."""
    found = [Probe(method, path, headers=headers) for path in paths for method in ("GET", "HEAD")]
    if write:
        found += [
            Probe("POST", paths[0], headers=headers),
            Probe("POST", paths[0], chunked=True, headers=headers),
        ]
    return found


def _recorded(result: Result, recorder: _Recorder) -> None:
    written: list[str] = []  # what the app wrote to wsgi.errors (Flask's tracebacks)
    for record in recorder.records.values():
        message = record.getMessage()
        if record.name == "bridge.wsgi":
            written.extend(line for line in message.splitlines() if line.strip())
        elif "held the event loop" in message:
            result.blocked.append(message.split(":")[0])
        elif record.levelno >= logging.ERROR:
            cause = record.exc_info[1] if record.exc_info else None
            detail = f"{type(cause).__name__}: {cause}" if cause else message
            result.problems.append(f"{record.name} logged: {detail}")
    if written:
        result.problems.append("the app wrote to wsgi.errors: " + written[-1].strip())


def _run_recorded(call: Any, result: Result) -> None:
    recorder = _Recorder()
    loggers = [logging.getLogger(), logging.getLogger("bridge")]
    for logger in loggers:
        logger.addHandler(recorder)
    try:
        call()
    except Exception as error:
        result.problems.append(f"{type(error).__name__}: {error}")
    finally:
        for logger in loggers:
            logger.removeHandler(recorder)
    _recorded(result, recorder)


# --- A WSGI app, through to_asgi.


class _LenientInput(wsgiref.validate.InputWrapper):
    """``read()`` with no size, as werkzeug does once a server sets ``wsgi.input_terminated``.

    PEP 3333's validator insists on a size; every server that sets the flag
    (gunicorn, mod_wsgi, the bridge) allows reading to the end.
    """

    def read(self, *args: Any) -> bytes:
        if args:
            return super().read(*args)
        data = self.input.read()
        assert type(data) is bytes
        return data


@contextlib.contextmanager
def _lenient_input() -> Iterator[None]:
    strict = wsgiref.validate.InputWrapper
    wsgiref.validate.InputWrapper = _LenientInput  # type: ignore[misc]
    try:
        yield
    finally:
        wsgiref.validate.InputWrapper = strict  # type: ignore[misc]


def check_wsgi(
    app: Any, probe_list: list[Probe], executor: str, headers: Headers = ()
) -> tuple[list[Result], list[Interleaved]]:
    """The probes one at a time, then each GET path's concurrent variants, under one executor."""
    runner = ThreadExecutor() if executor == "thread" else GreenletExecutor(block_warning=0.05)
    wrapped = to_asgi(wsgiref.validate.validator(app), executor=runner)
    results = []
    for probe in probe_list:
        result = Result(probe)
        _run_recorded(lambda p=probe, r=result: asyncio.run(_drive_asgi(wrapped, p, r)), result)
        results.append(result)
    mixed = []
    for path in dict.fromkeys(probe.path for probe in probe_list if probe.method == "GET"):
        logged = Result(Probe("GET", path))
        outcome = Interleaved(path, not_compared="it did not finish")

        def run(path: str = path) -> None:
            nonlocal outcome
            outcome = interleave(lambda p, r: _drive_asgi(wrapped, p, r), path, headers)

        _run_recorded(run, logged)
        if not outcome.not_compared:
            outcome.wrong += list(dict.fromkeys(logged.problems))
        mixed.append(outcome)
    asyncio.run(runner.aclose())
    return results, mixed


def _pieces(probe: Probe) -> list[bytes]:
    if probe.method != "POST":
        return []
    if probe.chunked:
        return [_BODY[:10], _BODY[10:20], _BODY[20:]]
    return [_BODY]


async def _drive_asgi(app: Any, probe: Probe, result: Result) -> None:
    path, _, query = probe.path.partition("?")
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bridge-check")]
    headers += [(name.lower().encode(), value.encode("latin-1")) for name, value in probe.headers]
    if probe.method == "POST":
        headers.append((b"content-type", b"application/octet-stream"))
        if not probe.chunked:
            headers.append((b"content-length", str(len(_BODY)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": probe.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    pieces = _pieces(probe) or [b""]
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pieces:
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
        elif message["type"] == "http.response.body":
            result.add_body(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), 30)
    finally:
        finished.set()


# --- An ASGI app, through to_wsgi.


def check_asgi(app: Any, probe_list: list[Probe]) -> list[Result]:
    wrapped = to_wsgi(app)
    validated = wsgiref.validate.validator(wrapped)  # type: ignore[arg-type]
    results = []
    for probe in probe_list:
        result = Result(probe)
        _run_recorded(lambda p=probe, r=result: _drive_wsgi(validated, p, r), result)
        results.append(result)
    wrapped.close()
    return results


def _drive_wsgi(app: Any, probe: Probe, result: Result) -> None:
    path, _, query = probe.path.partition("?")
    body = b"".join(_pieces(probe))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": probe.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in probe.headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    wsgiref.util.setup_testing_defaults(environ)
    if probe.method == "POST":
        environ["CONTENT_TYPE"] = "application/octet-stream"
        if probe.chunked:
            environ["wsgi.input_terminated"] = True
        else:
            environ["CONTENT_LENGTH"] = str(len(body))

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        result.status = int(status.split()[0])
        return lambda data: None

    response = app(environ, start_response)
    try:
        for chunk in response:
            result.add_body(chunk)
    finally:
        response.close()


def check(
    target: str,
    app: Any,
    paths: list[str],
    write: bool,
    interface: Interface | None,
    *,
    headers: Headers = (),
    loaded_before: Iterable[str] | None = None,
) -> tuple[str, bool]:
    """Drive ``app`` with the probes and return the report and whether it is ready.

    ``loaded_before`` names the modules imported before the app was loaded:
    the ones imported since are the app's, searched for thread-affine state.
    """
    kind = interface or interface_of(app)
    probe_list = probes(paths, write, headers)
    if kind == "asgi":
        return report(target, kind, {"through to_wsgi": check_asgi(app, probe_list)})
    with _lenient_input():
        runs: dict[str, list[Result]] = {}
        concurrent: dict[str, list[Interleaved]] = {}
        for executor in ("thread", "greenlet"):
            name = f"{executor} executor"
            runs[name], concurrent[name] = check_wsgi(app, probe_list, executor, headers)
    module = target.partition(":")[0]
    state = thread_affine_state(app, own_modules(module, loaded_before))
    return report(target, kind, runs, concurrent, state)
