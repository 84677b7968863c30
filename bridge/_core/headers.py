"""Status and response-header validation: what a WSGI app hands to start_response.

Pure functions, no I/O. Everything that could split or corrupt a response on
the wire (CR, LF, NUL and other controls, names that are not HTTP tokens) is
refused here, inside ``start_response``, so the app can still answer 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from .._errors import InvalidHeader, InvalidStatus

# RFC 9110 token characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field values: visible characters, obs-text, space and tab; nothing else.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_STATUS = re.compile(r"([1-5][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?")

# Connection-level headers belong to the server (PEP 3333, "Other HTTP Features").
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
_logger = logging.getLogger("bridge")
_warned_hop_by_hop: set[bytes] = set()

# Validated names, and most whole headers, repeat on every response: remember them.
_name_cache: dict[str, bytes] = {}
_NAME_CACHE_LIMIT = 1024
_pair_cache: dict[tuple[object, object], tuple[bytes, bytes]] = {}
_PAIR_CACHE_LIMIT = 4096
_status_codes: dict[str, int] = {}
_STATUS_CACHE_LIMIT = 256


def parse_status(status: object) -> int:
    """Return the status code of a WSGI status line such as ``"200 OK"``."""
    code = _status_codes.get(status) if type(status) is str else None
    if code is not None:
        return code
    if type(status) is not str:
        raise InvalidStatus(
            f"the status must be a str such as '200 OK', got {type(status).__name__}: {status!r}"
        )
    match = _STATUS.fullmatch(status)
    if match is None:
        raise InvalidStatus(
            f"invalid status {status!r}: give three digits, a space and a reason phrase "
            "without control characters, such as '200 OK'"
        )
    code = int(match.group(1))
    if len(_status_codes) < _STATUS_CACHE_LIMIT:
        _status_codes[status] = code
    return code


def encode_name(name: object) -> bytes:
    """Lower-case, latin-1 bytes of a header name that is a valid HTTP token."""
    cached = _name_cache.get(name) if type(name) is str else None
    if cached is not None:
        return cached
    if type(name) is not str:
        raise InvalidHeader(f"header names must be str, got {type(name).__name__}: {name!r}")
    if _TOKEN.fullmatch(name) is None:
        raise InvalidHeader(
            f"invalid header name {name!r}: use only letters, digits and !#$%&'*+-.^_`|~"
        )
    encoded = name.lower().encode("ascii")
    if len(_name_cache) < _NAME_CACHE_LIMIT:
        _name_cache[name] = encoded
    return encoded


def encode_value(name: str, value: object) -> bytes:
    """Latin-1 bytes of a header value, refusing anything that could split the response."""
    if type(value) is not str:
        raise InvalidHeader(
            f"header {name!r}: values must be str, got {type(value).__name__}: {value!r}"
        )
    if _FIELD_VALUE.fullmatch(value) is None:
        if any(ord(char) > 0xFF for char in value):
            raise InvalidHeader(
                f"header {name!r}: value {value!r} is not latin-1; "
                "encode it (for example RFC 8187 or percent-encoding) before sending"
            )
        raise InvalidHeader(
            f"header {name!r}: value {value!r} contains CR, LF, NUL or another control "
            "character, which could split the response; remove them"
        )
    return value.encode("latin-1")


def encode_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """Validate a WSGI header list and encode it for ASGI, dropping hop-by-hop headers."""
    if type(headers) is not list and (
        not isinstance(headers, Sequence) or isinstance(headers, (str, bytes))
    ):
        raise InvalidHeader(
            f"response headers must be a list of (name, value) tuples, got {type(headers).__name__}"
        )
    try:  # headers seen before, in one pass
        return [_pair_cache[item] for item in headers]
    except (KeyError, TypeError):
        pass
    encoded: list[tuple[bytes, bytes]] = []
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise InvalidHeader(f"each header must be a (name, value) tuple, got {item!r}")
        pair = encode_pair(item)
        if pair is not None:
            encoded.append(pair)
    return encoded


def encode_pair(item: tuple[object, object]) -> tuple[bytes, bytes] | None:
    """One header checked and encoded; ``None`` for a hop-by-hop header, which is dropped."""
    try:
        cached = _pair_cache.get(item)
    except TypeError:  # an unhashable value: the checks below say what is wrong
        cached = None
    if cached is not None:
        return cached
    name, value = item
    raw_name = encode_name(name)
    pair = (raw_name, encode_value(str(name), value))  # name is a str: encode_name checked
    if raw_name in HOP_BY_HOP:
        _warn_hop_by_hop(raw_name)
        return None
    if len(_pair_cache) >= _PAIR_CACHE_LIMIT:
        _pair_cache.clear()
    _pair_cache[item] = pair
    return pair


def _warn_hop_by_hop(name: bytes) -> None:
    if name not in _warned_hop_by_hop:
        _warned_hop_by_hop.add(name)
        _logger.warning(
            "dropped the %r response header: connection handling belongs to the server "
            "(PEP 3333); remove it from the application (said once per header name)",
            name.decode("ascii"),
        )
