"""Scope -> environ, checked against PEP 3333 and the ASGI spec's WSGI section."""

from __future__ import annotations

import io
import sys

import pytest

from bridge import ASGI_SCOPE_KEY, BadRequest
from bridge._core.environ import EnvironBuilder, native, split_path
from tests.harness import make_scope


def build(scope: dict[str, object], **options: object) -> dict[str, object]:
    return EnvironBuilder(**options).build(scope)  # type: ignore[arg-type]


def test_minimal_environ_has_every_pep3333_key_with_native_strings() -> None:
    scope = make_scope("/hello", query_string=b"a=1&b=2")
    environ = build(scope)
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/hello"
    assert environ["QUERY_STRING"] == "a=1&b=2"
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == "8000"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"] == "50000"
    assert environ["HTTP_HOST"] == "testserver"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.run_once"] is False
    assert environ[ASGI_SCOPE_KEY] is scope
    for key, value in environ.items():
        if key.isupper():
            assert type(value) is str, key


def test_utf8_path_becomes_latin1_native_string() -> None:
    environ = build(make_scope("/café/日"))
    assert environ["PATH_INFO"] == "/cafÃ©/æ\x97¥"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/日"


def test_non_ascii_query_bytes_decode_as_latin1() -> None:
    assert build(make_scope(query_string=b"q=\xe9"))["QUERY_STRING"] == "q=\xe9"


def test_obs_text_header_value_decodes_as_latin1() -> None:
    environ = build(make_scope(headers=[(b"x-name", b"caf\xe9")]))
    assert environ["HTTP_X_NAME"] == "café"


def test_content_type_and_length_have_no_http_twins() -> None:
    environ = build(
        make_scope(
            method="POST", headers=[(b"content-type", b"text/plain"), (b"content-length", b"5")]
        )
    )
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ


def test_repeated_headers_are_joined_with_commas_and_cookies_with_semicolons() -> None:
    environ = build(
        make_scope(
            headers=[
                (b"accept", b"text/html"),
                (b"cookie", b"a=1"),
                (b"accept", b"application/json"),
                (b"cookie", b"b=2"),
            ]
        )
    )
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_underscore_headers_are_dropped_not_merged_with_their_dash_twin() -> None:
    environ = build(make_scope(headers=[(b"x-user", b"alice"), (b"x_user", b"mallory")]))
    assert environ["HTTP_X_USER"] == "alice"


def test_a_dropped_header_name_is_judged_once_then_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builder = EnvironBuilder()
    judged: list[object] = []
    judge = builder._key

    def counting(raw_name: object, text: bool) -> str:
        judged.append(raw_name)
        return judge(raw_name, text)

    monkeypatch.setattr(builder, "_key", counting)
    scope = make_scope(headers=[(b"x_user", b"mallory"), (b"x-user", b"alice")])
    for _ in range(3):
        assert builder.build(scope)["HTTP_X_USER"] == "alice"
    text = [("X_User", "mallory"), ("X-User", "alice")]
    for _ in range(3):
        assert builder.build_from_text("GET", "/", "", "", "1.1", text)["HTTP_X_USER"] == "alice"
    assert {b"x_user", "X_User"} <= set(judged)
    assert len(judged) == len(set(judged)), "a header name was judged more than once"


@pytest.mark.parametrize("name", [b"content-length", b"content-type", b"host"])
def test_duplicate_framing_headers_are_a_bad_request(name: bytes) -> None:
    headers = [(name, b"5"), (name, b"7")]
    if name == b"host":
        scope = make_scope()
        scope["headers"] = headers
    else:
        scope = make_scope(headers=headers)
    with pytest.raises(BadRequest, match=name.decode()):
        build(scope)


def test_too_many_repeated_headers_is_a_bad_request_in_linear_time() -> None:
    headers = [(b"x-many", b"v")] * 50_001
    with pytest.raises(BadRequest, match="too many repeated"):
        build(make_scope(headers=headers), max_headers=100_000, max_header_bytes=10**7)
    environ = build(make_scope(headers=[(b"x-many", b"v")] * 11), max_duplicate_headers=10)
    assert environ["HTTP_X_MANY"] == ",".join(["v"] * 11)


@pytest.mark.parametrize(
    ("root_path", "path", "script_name", "path_info"),
    [
        ("/mnt", "/mnt/x", "/mnt", "/x"),
        ("/mnt", "/mnt", "/mnt", ""),
        ("/mnt/", "/mnt/x", "/mnt", "/x"),
        ("/mnt", "/mntx", "/mnt", "/mntx"),
        ("/app", "/application/x", "/app", "/application/x"),
        ("/app", "/other", "/app", "/other"),
        ("/app", "/x", "/app", "/x"),
        ("", "/x", "", "/x"),
        ("/", "/x", "", "/x"),
    ],
)
def test_root_path_splits_only_at_a_segment_boundary(
    root_path: str, path: str, script_name: str, path_info: str
) -> None:
    assert split_path(path, root_path) == (script_name, path_info)
    environ = build(make_scope(path, root_path=root_path))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


def test_non_ascii_root_path_is_a_native_string_too() -> None:
    environ = build(make_scope("/é/x", root_path="/é"))
    assert environ["SCRIPT_NAME"] == native("/é") == "/Ã©"
    assert environ["PATH_INFO"] == "/x"


def test_dot_segments_pass_through_unchanged() -> None:
    assert build(make_scope("/static/../secret"))["PATH_INFO"] == "/static/../secret"


def test_scheme_comes_from_the_scope() -> None:
    assert build(make_scope(scheme="https"))["wsgi.url_scheme"] == "https"


def test_unix_socket_server_takes_name_and_port_from_host_header() -> None:
    scope = make_scope(server=("/run/app.sock", None))
    environ = build(scope)
    assert environ["SERVER_NAME"] == "testserver"
    assert environ["SERVER_PORT"] == "80"
    scope["headers"] = [(b"host", b"example.com:8443")]
    environ = build(scope)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.com", "8443")
    scope["headers"] = [(b"host", b"[::1]")]
    scope["scheme"] = "https"
    environ = build(scope)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("[::1]", "443")


def test_missing_client_leaves_remote_addr_out() -> None:
    environ = build(make_scope(client=None))
    assert "REMOTE_ADDR" not in environ


def test_http2_version_and_errors_stream_are_carried() -> None:
    errors = io.StringIO()
    environ = build(make_scope(http_version="2"), errors=errors)
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["wsgi.errors"] is errors
    assert build(make_scope())["wsgi.errors"] is sys.stderr


def test_each_environ_is_a_fresh_dict() -> None:
    builder = EnvironBuilder()
    first = builder.build(make_scope("/a"))
    first["mutated"] = True
    second = builder.build(make_scope("/b"))
    assert "mutated" not in second
    assert second["PATH_INFO"] == "/b"
