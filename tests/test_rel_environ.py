"""RELIABILITY.md section I (cases 60-73): the environ a WSGI app sees under to_asgi.

Each test serves a real request through ``to_asgi`` and a fake ASGI server,
under both executors, asyncio and trio, to an app wrapped in
``wsgiref.validate``: the environ is checked by the stdlib on every request,
and the test then reads what the app saw. tests/test_core_environ.py covers
the same cases on ``EnvironBuilder`` alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge import ASGI_SCOPE_KEY, to_asgi
from bridge._types import Scope
from tests.harness import Exchange, FakeServer, make_scope, validated

pytestmark = pytest.mark.anyio


class Recorder:
    """A WSGI app that keeps each environ it gets and the body it read."""

    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # wsgiref.validate wants read() with a size (PEP 3333 before input_terminated).
        size = int(environ.get("CONTENT_LENGTH") or 0)
        self.environs.append({**environ, "body": environ["wsgi.input"].read(size)})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


async def serve(
    scope: Scope, executor: str, body: tuple[bytes, ...] = ()
) -> tuple[Exchange, list[dict[str, Any]]]:
    recorder = Recorder()
    app = to_asgi(validated(recorder), executor=executor)
    exchange = await FakeServer(app, body).request(scope)
    return exchange, recorder.environs


async def environ_of(scope: Scope, executor: str) -> dict[str, Any]:
    exchange, environs = await serve(scope, executor)
    assert exchange.error is None
    assert (exchange.status, exchange.body) == (200, b"ok")
    assert len(environs) == 1
    return environs[0]


async def test_60_utf8_path_is_a_latin1_native_string(executor: str) -> None:
    environ = await environ_of(make_scope("/café/日"), executor)
    assert environ["PATH_INFO"] == "/cafÃ©/æ\x97¥"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/日"


async def test_61_encoded_slash_stays_readable_in_the_asgi_scope(executor: str) -> None:
    # Like gunicorn and waitress, PATH_INFO is the decoded path; the target as
    # the client sent it is not lost: the app finds raw_path in the scope.
    scope = make_scope("/a/b", raw_path=b"/a%2Fb")
    environ = await environ_of(scope, executor)
    assert environ["PATH_INFO"] == "/a/b"
    assert environ[ASGI_SCOPE_KEY]["raw_path"] == b"/a%2Fb"


async def test_62_dot_segments_pass_through_unchanged(executor: str) -> None:
    environ = await environ_of(make_scope("/static/../secret"), executor)
    assert environ["PATH_INFO"] == "/static/../secret"


async def test_63_root_path_matches_only_a_whole_segment(executor: str) -> None:
    environ = await environ_of(make_scope("/application/x", root_path="/app"), executor)
    assert environ["PATH_INFO"] == "/application/x"
    assert not environ["PATH_INFO"].startswith("lication")


@pytest.mark.parametrize("path", ["/other", "/"])
async def test_64_path_outside_root_path_is_taken_as_already_stripped(
    executor: str, path: str
) -> None:
    # docs/to_asgi.md: hypercorn behind a prefix-stripping proxy sends the
    # path without root_path, so the app is mounted at root_path either way.
    environ = await environ_of(make_scope(path, root_path="/app"), executor)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", path)


async def test_65_server_port_is_a_string(executor: str) -> None:
    environ = await environ_of(make_scope(server=("10.0.0.1", 8443)), executor)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("10.0.0.1", "8443")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", "50000")


async def test_66_unix_socket_server_gets_a_string_port_from_the_host_header(
    executor: str,
) -> None:
    scope = make_scope(server=("/run/app.sock", None))
    scope["headers"] = [(b"host", b"example.com:8080")]
    environ = await environ_of(scope, executor)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.com", "8080")
    scope = make_scope(server=("/run/app.sock", None), scheme="https")
    environ = await environ_of(scope, executor)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("testserver", "443")


async def test_67_non_ascii_query_bytes_decode_as_latin1(executor: str) -> None:
    environ = await environ_of(make_scope(query_string=b"q=\xe9&r=%E9"), executor)
    assert environ["QUERY_STRING"] == "q=\xe9&r=%E9"


async def test_68_underscore_header_never_passes_for_its_dash_twin(executor: str) -> None:
    headers = [(b"x-user", b"alice"), (b"x_user", b"mallory")]
    environ = await environ_of(make_scope(headers=headers), executor)
    assert environ["HTTP_X_USER"] == "alice"
    assert "mallory" not in repr({k: v for k, v in environ.items() if k.startswith("HTTP_")})
    # Alone, the underscore header is dropped too: it cannot stand in for x-user.
    environ = await environ_of(make_scope(headers=[(b"x_user", b"mallory")]), executor)
    assert "HTTP_X_USER" not in environ


async def test_69_two_http2_cookie_headers_join_with_semicolons(executor: str) -> None:
    headers = [(b"cookie", b"a=1"), (b"cookie", b"b=2")]
    environ = await environ_of(make_scope(headers=headers, http_version="2"), executor)
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


@pytest.mark.parametrize("name", [b"content-length", b"Content-Type", b"host"])
async def test_70_duplicate_framing_header_is_a_400_before_the_app(
    executor: str, name: bytes
) -> None:
    scope = make_scope(method="POST")
    scope["headers"] = [(b"host", b"testserver"), (name, b"5"), (name, b"7")]
    if name == b"host":
        scope["headers"] = scope["headers"][1:]
    exchange, environs = await serve(scope, executor, (b"12345",))
    assert exchange.status == 400
    assert name.decode().lower() in exchange.body.decode()
    assert environs == []


async def test_71_many_repeated_headers_are_refused_past_the_limits(executor: str) -> None:
    # 101 copies are 100 repeats: the default limit, still served.
    environ = await environ_of(make_scope(headers=[(b"x-many", b"v")] * 101), executor)
    assert environ["HTTP_X_MANY"] == ",".join(["v"] * 101)
    exchange, environs = await serve(make_scope(headers=[(b"x-many", b"v")] * 102), executor)
    assert exchange.status == 400
    assert b"too many repeated" in exchange.body
    assert environs == []
    # The CVE-2025-14550 shape: tens of thousands of copies meet the header
    # count cap first (max_headers, 431) and are refused before any merging.
    exchange, environs = await serve(make_scope(headers=[(b"x-many", b"v")] * 50_000), executor)
    assert exchange.status == 431
    assert b"max_headers" in exchange.body
    assert environs == []


async def test_72_obs_text_header_value_decodes_as_latin1(executor: str) -> None:
    environ = await environ_of(make_scope(headers=[(b"x-name", b"caf\xe9")]), executor)
    assert environ["HTTP_X_NAME"] == "café"


async def test_73_simple_post_passes_the_validator_end_to_end(executor: str) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"11")]
    scope = make_scope("/submit", method="POST", headers=headers, query_string=b"a=1")
    exchange, environs = await serve(scope, executor, (b"hello ", b"world"))
    assert exchange.error is None
    assert (exchange.status, exchange.body, exchange.complete) == (200, b"ok", True)
    (environ,) = environs
    assert environ["body"] == b"hello world"
    assert (environ["REQUEST_METHOD"], environ["CONTENT_TYPE"]) == ("POST", "text/plain")
    assert (environ["CONTENT_LENGTH"], environ["QUERY_STRING"]) == ("11", "a=1")
    assert environ["wsgi.multithread"] is (executor == "thread")
