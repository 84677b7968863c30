"""Property tests of the translation core: any valid scope gives a valid environ."""

from __future__ import annotations

import warnings
import wsgiref.validate

from hypothesis import given
from hypothesis import strategies as st

from bridge import BadRequest, InvalidHeader, InvalidStatus
from bridge._core.environ import EnvironBuilder, split_path
from bridge._core.headers import encode_headers, parse_status
from tests.harness import make_scope

segments = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8).map(
    lambda text: text.replace("/", "")
)
paths = st.lists(segments, max_size=5).map(lambda parts: "/" + "/".join(parts))
header_names = st.from_regex(rb"[a-z][a-z0-9\-_]{0,15}", fullmatch=True)
header_values = st.binary(max_size=30).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)
)
headers = st.lists(st.tuples(header_names, header_values), max_size=12)


@given(paths, paths, st.binary(max_size=40), headers)
def test_every_environ_passes_the_stdlib_checks(
    root: str, path: str, query: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    scope = make_scope(root + path, root_path=root, query_string=query, headers=extra)
    try:
        environ = EnvironBuilder().build(scope)
    except BadRequest:
        names = [name for name, _ in scope["headers"]]
        assert any(names.count(n) > 1 for n in (b"host", b"content-length", b"content-type"))
        return
    environ["wsgi.input"] = _NoInput()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wsgiref.validate.check_environ(environ)
    script_name, path_info = environ["SCRIPT_NAME"], environ["PATH_INFO"]
    full = (script_name + path_info).encode("latin-1").decode("utf-8")
    assert full == scope["path"]
    for name, _ in extra:
        if b"_" in name:
            assert "HTTP_" + name.decode().upper() not in environ or b"-" in name


@given(paths, paths)
def test_split_path_never_cuts_inside_a_segment(root: str, path: str) -> None:
    script_name, path_info = split_path(path, root)
    assert path_info == "" or path_info.startswith("/") or script_name == ""
    if path.startswith(root.rstrip("/") + "/") and root.rstrip("/"):
        assert script_name + path_info == path


@given(st.text(max_size=12))
def test_status_parsing_accepts_or_refuses_but_never_crashes(status: str) -> None:
    try:
        code = parse_status(status)
    except InvalidStatus:
        return
    assert 100 <= code <= 999
    assert status[:3] == str(code)
    assert "\r" not in status and "\n" not in status


@given(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=5))
def test_encoded_headers_never_carry_line_breaks(raw: list[tuple[str, str]]) -> None:
    try:
        encoded = encode_headers(raw)
    except InvalidHeader:
        return
    for name, value in encoded:
        assert name == name.lower()
        assert not set(name + value) & {0, 10, 13}


class _NoInput:
    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> _NoInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration
