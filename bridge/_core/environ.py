"""ASGI HTTP scope -> WSGI environ (PEP 3333), with no I/O.

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
        max_headers: int = 200,
        max_header_bytes: int = 65536,
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
        self._server: object = None
        self._server_strings = ("", "")

    def _key(self, raw_name: bytes) -> str:
        key = self._keys.get(raw_name)
        if key is not None:
            return key
        name = raw_name.decode("latin-1")
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
        if len(self._keys) < _KEY_CACHE_LIMIT:
            self._keys[raw_name] = key
        return key

    def build(self, scope: Scope) -> Environ:
        """Return a new environ for one HTTP scope; ``wsgi.input`` is the caller's to add."""
        try:
            environ = self._build(scope)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as error:
            # UnicodeError is a ValueError: a path that is not text, for one.
            raise BadRequest(f"the server sent a malformed HTTP scope: {error!r}") from error
        length = environ.get("CONTENT_LENGTH")
        if length is not None:
            if not length.isdigit():
                raise BadRequest(f"Content-Length {length!r} is not one whole number")
            if "HTTP_TRANSFER_ENCODING" in environ:
                # The server framed the body by Transfer-Encoding (RFC 9112 6.3): a
                # Content-Length beside it describes a body the app will not get.
                del environ["CONTENT_LENGTH"]
        return environ

    def _build(self, scope: Scope) -> Environ:
        method, path = scope["method"], scope["path"]
        if type(method) is not str or type(path) is not str:
            raise TypeError("method and path must be str")
        environ = self._base.copy()
        script_name, path_info = split_path(path, scope.get("root_path", ""))
        environ["REQUEST_METHOD"] = method
        environ["SCRIPT_NAME"] = native(script_name)
        environ["PATH_INFO"] = native(path_info)
        environ["QUERY_STRING"] = scope.get("query_string", b"").decode("latin-1")
        version = scope.get("http_version", "1.1")
        environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(version) or "HTTP/" + version
        scheme = scope.get("scheme", "http")
        environ["wsgi.url_scheme"] = scheme
        environ[ASGI_SCOPE_KEY] = scope

        headers = scope["headers"]
        if type(headers) is not list:
            headers = list(headers)  # the spec allows any iterable; servers send lists
        if len(headers) > self.max_headers:
            raise HeadersTooLarge(
                f"the request has {len(headers)} headers, over max_headers={self.max_headers}"
            )
        repeated: dict[str, list[str]] | None = None
        size = 0
        known = self._keys.get
        for raw_name, raw_value in headers:
            size += len(raw_name) + len(raw_value)
            key = known(raw_name) or self._key(raw_name)
            if key is _DROP:
                continue
            value = raw_value.decode("latin-1")
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
            raise HeadersTooLarge(
                f"the request headers take {size} bytes, over max_header_bytes="
                f"{self.max_header_bytes}"
            )
        if repeated is not None:
            self._join_repeated(environ, repeated)

        server = scope.get("server")
        if server is not None and server[1] is not None:
            # The same listener serves every request: convert its address once.
            if server != self._server:
                self._server = server
                self._server_strings = (str(server[0]), str(server[1]))
            environ["SERVER_NAME"], environ["SERVER_PORT"] = self._server_strings
        else:
            self._server_from_host(environ, scheme)
        client = scope.get("client")
        if client is not None:
            environ["REMOTE_ADDR"] = str(client[0])
            environ["REMOTE_PORT"] = str(client[1])
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

    @staticmethod
    def _server_from_host(environ: Environ, scheme: str) -> None:
        # Unix sockets and some test servers give no (host, port): use the Host header.
        host = environ.get("HTTP_HOST", "")
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit():
            environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
        else:
            environ["SERVER_NAME"] = host or "localhost"
            environ["SERVER_PORT"] = _DEFAULT_PORTS.get(scheme, "80")
