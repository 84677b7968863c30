"""ASGI HTTP scope -> WSGI environ (PEP 3333), with no I/O.

The same rules serve requests that arrive as text rather than as a scope (a
Lambda event): ``build_from_text``.

The constant part of every environ is built once per bridge; each request
copies it and adds what varies. Paths become "native strings": the UTF-8
bytes of the path, decoded as latin-1, as PEP 3333 and the ASGI spec's "WSGI
compatibility" section ask.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from .._errors import BadRequest, HeadersTooLarge
from .._types import Environ, ErrorsStream, Scope

ASGI_SCOPE_KEY = "asgi.scope"
"""The environ key under which the app finds the original ASGI scope."""

MAX_HEADERS = 200
"""Request header lines allowed by default before 431."""
MAX_HEADER_BYTES = 65536
"""Bytes of request header names and values allowed by default before 431."""

_DROP = ""
# RFC 9110 5.6.2 token characters, less "_" (dropped on its own above).
_TOKEN = re.compile(r"[!#$%&'*+\-.^`|~0-9A-Za-z]+")
# Headers whose repetition makes the request ambiguous (RFC 9110): refused.
_SINGLE = frozenset({"CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_HOST"})
_KEY_CACHE_LIMIT = 512
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2", "3": "HTTP/3"}


def native(text: str) -> str:
    """The PEP 3333 "native string" of a decoded URL part: UTF-8 bytes seen as latin-1."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def split_path(path: str, root_path: str) -> tuple[str, str]:
    """Split an ASGI path into ``(SCRIPT_NAME, PATH_INFO)``, only at a segment boundary.

    ``root_path="/mnt"`` claims ``/mnt`` and ``/mnt/x`` but not ``/mntx``. A path
    that is not under the root path is taken as already stripped (hypercorn and
    some routers send it so): the root path is the script name, the path is kept.
    """
    root = root_path.rstrip("/")
    if not root:
        return "", path
    if path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return root, path[len(root) :]
    return root, path


def native_value(value: object) -> str:
    """A header given as text, as the latin-1 reading of the bytes a client would send.

    Text that latin-1 can hold stays as it is; anything else is taken as its UTF-8 bytes.
    """
    if type(value) is not str:
        raise TypeError(
            f"header names and values must be text, got {type(value).__name__}: {value!r}"
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value


class EnvironBuilder:
    """Builds one environ per request from a constant base built once.

    It also enforces the request header caps: more than ``max_headers`` header
    lines, or more than ``max_header_bytes`` bytes of names and values, is a
    ``HeadersTooLarge`` (431); more than ``max_duplicate_headers`` repeats is a
    ``BadRequest`` (400). Servers cap the head they parse, but not all of them,
    and each header costs an environ key that the app's framework walks.
    """

    def __init__(
        self,
        *,
        errors: ErrorsStream | None = None,
        multithread: bool = True,
        file_wrapper: Callable[..., Any] | None = None,
        max_duplicate_headers: int = 100,
        max_headers: int = MAX_HEADERS,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.max_duplicate_headers = max_duplicate_headers
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        base: Environ = {
            "wsgi.version": (1, 0),
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": "bridge",
        }
        if file_wrapper is not None:
            base["wsgi.file_wrapper"] = file_wrapper
        self._base = base
        self._keys: dict[bytes, str] = {}
        self._text_keys: dict[str, str] = {}
        self._server: object = None
        self._server_strings = ("", "")

    def _key(self, raw_name: object, text: bool) -> str:
        if text and type(raw_name) is str:
            name = raw_name
        elif not text and isinstance(raw_name, (bytes, bytearray)):
            name = raw_name.decode("latin-1")
        else:
            kind = "text" if text else "bytes"
            raise TypeError(f"header names must be {kind}, got {raw_name!r}")
        if "_" in name or not _TOKEN.fullmatch(name):
            # CVE-2015-0219: "x_user" must not pass for "x-user"; nor, upper-cased,
            # may a non-ASCII name ("\xdf" -> "SS") pass for an ASCII one.
            key = _DROP
        elif name.lower() == "content-type":
            key = "CONTENT_TYPE"
        elif name.lower() == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        cache: dict[Any, str] = self._text_keys if text else self._keys
        if len(cache) < _KEY_CACHE_LIMIT:
            cache[raw_name] = key
        return key

    def build(self, scope: Scope) -> Environ:
        """Return a new environ for one HTTP scope; ``wsgi.input`` is the caller's to add."""
        try:
            method, path = scope["method"], scope["path"]
            if type(method) is not str or type(path) is not str:
                raise TypeError("method and path must be str")
            headers = scope["headers"]
            if type(headers) is not list:
                headers = list(headers)  # the spec allows any iterable; servers send lists
            query_string = scope.get("query_string", b"").decode("latin-1")
            root_path = scope.get("root_path", "")
            version = scope.get("http_version", "1.1")
            environ = self._assemble(method, path, root_path, query_string, version, headers, False)
            scheme = scope.get("scheme", "http")
            environ["wsgi.url_scheme"] = scheme
            server = scope.get("server")
            if server is not None and server[1] is not None:
                # The same listener serves every request: convert its address once.
                if server != self._server:
                    self._server = server
                    self._server_strings = (str(server[0]), str(server[1]))
                environ["SERVER_NAME"], environ["SERVER_PORT"] = self._server_strings
            else:
                _server_from_host(environ, scheme)
            client = scope.get("client")
            if client is not None:
                environ["REMOTE_ADDR"] = str(client[0])
                environ["REMOTE_PORT"] = str(client[1])
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as error:
            # UnicodeError is a ValueError: a path that is not text, for one.
            raise BadRequest(f"the server sent a malformed HTTP scope: {error!r}") from error
        environ[ASGI_SCOPE_KEY] = scope
        if "CONTENT_LENGTH" in environ:
            _check_length(environ)
        return environ

    def build_from_text(
        self,
        method: str,
        path: str,
        root_path: str,
        query_string: str,
        http_version: str,
        headers: list[tuple[str, str]],
    ) -> Environ:
        """The environ of a request that never was an ASGI scope (a Lambda event), by one rule set.

        ``path`` is decoded, as a scope's; header names and values are text, as
        such sources hand them over. Values that are not latin-1 go in as their
        UTF-8 bytes, which is what a server would have read off the wire. The
        caller adds ``wsgi.url_scheme``, ``SERVER_NAME``, ``SERVER_PORT`` and
        ``REMOTE_ADDR``: it knows better than the headers where the request came from.
        """
        try:
            environ = self._assemble(
                method, path, root_path, query_string, http_version, headers, True
            )
        except (TypeError, AttributeError, ValueError) as error:
            raise BadRequest(f"the request cannot be an environ: {error!r}") from error
        if "CONTENT_LENGTH" in environ:
            _check_length(environ)
        return environ

    def _assemble(
        self,
        method: str,
        path: str,
        root_path: str,
        query_string: str,
        http_version: str,
        headers: list[Any],
        text: bool,
    ) -> Environ:
        environ = self._base.copy()
        if root_path:
            script_name, path = split_path(path, root_path)
            environ["SCRIPT_NAME"] = native(script_name)
        else:
            environ["SCRIPT_NAME"] = ""
        environ["PATH_INFO"] = path if path.isascii() else native(path)
        environ["REQUEST_METHOD"] = method
        environ["QUERY_STRING"] = query_string
        environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(http_version) or "HTTP/" + http_version

        if len(headers) > self.max_headers:
            raise too_many_headers(len(headers), self.max_headers)
        repeated: dict[str, list[str]] | None = None
        size = 0
        known = self._text_keys.get if text else self._keys.get
        for raw_name, raw_value in headers:
            if not text:
                value = raw_value.decode("latin-1")
            elif type(raw_value) is str and raw_value.isascii():
                value = raw_value
            else:
                value = native_value(raw_value)
            size += len(raw_name) + len(value)
            key = known(raw_name)
            if key is None:  # not "or": a dropped name is remembered as "", which is falsy
                key = self._key(raw_name, text)
            if key is _DROP:
                continue
            if key in environ:
                if repeated is None:
                    repeated = {}
                values = repeated.get(key)
                if values is None:
                    repeated[key] = values = [environ[key]]
                values.append(value)
            else:
                environ[key] = value
        if size > self.max_header_bytes:
            raise too_many_header_bytes(size, self.max_header_bytes)
        if repeated is not None:
            self._join_repeated(environ, repeated)
        return environ

    def _join_repeated(self, environ: Environ, repeated: dict[str, list[str]]) -> None:
        count = sum(len(values) - 1 for values in repeated.values())
        if count > self.max_duplicate_headers:
            raise BadRequest(
                f"too many repeated request headers ({count} > {self.max_duplicate_headers})"
            )
        for key, values in repeated.items():
            if key in _SINGLE:
                name = key.removeprefix("HTTP_").replace("_", "-").lower()
                raise BadRequest(f"the request has {len(values)} {name!r} headers; one is allowed")
            # HTTP/2 sends each cookie on its own line; parsers expect "; " between them.
            environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(values)


def too_many_headers(count: int, limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(f"the request has {count} headers, over max_headers={limit}")


def too_many_header_bytes(size: int, limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(f"the request headers take {size} bytes, over max_header_bytes={limit}")


def _check_length(environ: Environ) -> None:
    length = environ["CONTENT_LENGTH"]
    if not length.isdigit():
        raise BadRequest(f"Content-Length {length!r} is not one whole number")
    if "HTTP_TRANSFER_ENCODING" in environ:
        # The server framed the body by Transfer-Encoding (RFC 9112 6.3): a
        # Content-Length beside it describes a body the app will not get.
        del environ["CONTENT_LENGTH"]


def _server_from_host(environ: Environ, scheme: str) -> None:
    """SERVER_NAME and SERVER_PORT from the Host header, when no listener address is known."""
    # Unix sockets and some test servers give no (host, port).
    host = environ.get("HTTP_HOST", "")
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
    else:
        environ["SERVER_NAME"] = host or "localhost"
        environ["SERVER_PORT"] = _DEFAULT_PORTS.get(scheme, "80")
