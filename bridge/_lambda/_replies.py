"""A finished HTTP response -> the dict each Lambda event source expects back.

Headers leave in the one form each source can carry repeats in: payload 1.0
sends ``multiValueHeaders``; payload 2.0 joins repeats with commas and moves
``Set-Cookie`` into ``cookies`` (a cookie cannot be comma-joined); a load
balancer without multi-value headers gets each extra ``Set-Cookie`` under a
differently cased name, which it passes on as separate headers, and every
other repeat comma-joined.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any, Final

from ._events import SOURCE_NAMES, LambdaRequest, ReplyForm, Source

logger = logging.getLogger("bridge.lambda")

DEFAULT_TEXT_TYPES: Final = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)
"""Media types whose bodies go out as text; anything else, or anything compressed, as base64."""

# Lambda's limit on a synchronous response payload, and the stricter one of load balancers.
PAYLOAD_LIMITS: Final[dict[Source, int]] = {
    "rest": 6 * 1024 * 1024,
    "http": 6 * 1024 * 1024,
    "url": 6 * 1024 * 1024,
    "alb": 1024 * 1024,
}
_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}


Response = tuple[int, Sequence[tuple[Any, Any]], list[bytes], int]
"""What the app answered: status, headers, body chunks and body size in bytes.

The headers are checked pairs as either kind of app gave them: bytes from the
WSGI response rules, text from the ASGI header checks. Chunks past the payload
limit are not kept; the size still counts them.
"""


class TextTypes:
    """Decides text or base64 for a body from its Content-Type and Content-Encoding."""

    def __init__(self, types: Iterable[str]) -> None:
        self.prefixes: tuple[str, ...] = ()
        self.suffixes: tuple[str, ...] = ()
        self.exact: frozenset[str] = frozenset()
        self._known: dict[tuple[str, str], bool] = {}
        for entry in types:
            entry = entry.strip().lower()
            if entry.endswith("/"):
                self.prefixes += (entry,)
            elif entry.startswith("+"):
                self.suffixes += (entry,)
            else:
                self.exact |= {entry}

    def is_text(self, content_type: str, content_encoding: str) -> bool:
        key = (content_type, content_encoding)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= 256:
                self._known.clear()
            known = self._known[key] = self._decide(content_type, content_encoding)
        return known

    def _decide(self, content_type: str, content_encoding: str) -> bool:
        if content_encoding.strip().lower() not in ("", "identity"):
            return False
        media = content_type.split(";", 1)[0].strip().lower()
        return (
            media in self.exact
            or media.startswith(self.prefixes)
            or (bool(self.suffixes) and media.endswith(self.suffixes))
        )


def reply(
    request: LambdaRequest, response: Response, text_types: TextTypes, limit: int
) -> dict[str, Any]:
    """The event source's response dict; too big for the payload limit becomes an error reply."""
    status, headers, chunks, size = response
    if size > limit:
        return too_large(request, size, limit)
    form = request.form
    result: dict[str, Any] = {"statusCode": status}
    content_type, content_encoding = _put_headers(result, form, headers)
    body = b"".join(chunks)
    if not body:
        encoded, is_base64 = "", False
    elif text_types.is_text(content_type, content_encoding):
        try:
            encoded, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:  # declared as text, but not UTF-8: only base64 keeps it whole
            encoded, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        encoded, is_base64 = base64.b64encode(body).decode("ascii"), True
    _put_body(result, form, status, encoded, is_base64)
    # A JSON dump costs time; only when the rough size is near the limit.
    if len(encoded) + 64 * len(headers) > limit // 2:
        size = len(json.dumps(result).encode("utf-8"))
        if size > limit:
            return too_large(request, size, limit)
    return result


def too_large(request: LambdaRequest, size: int, allowed: int) -> dict[str, Any]:
    """The error reply for a response over the payload limit, with the cause logged."""
    logger.error(
        "the response to %s %r is %d bytes as a Lambda payload, over the limit of %d bytes "
        "for %s: answering %d instead. Send large bodies from S3 (a redirect to a presigned "
        "URL) or compress them.",
        request.method,
        request.path,
        size,
        allowed,
        SOURCE_NAMES[request.form.source],
        error_status(request.form),
    )
    return error_reply(request.form, error_status(request.form))


def error_status(form: ReplyForm) -> int:
    """A load balancer reports a bad target as 502; API Gateway apps answer their own 500."""
    return 502 if form.source == "alb" else 500


def error_reply(form: ReplyForm, status: int) -> dict[str, Any]:
    text = f"{status} {_REASONS.get(status, '')}".strip()
    result: dict[str, Any] = {"statusCode": status}
    _put_headers(result, form, _ERROR_HEADERS)
    _put_body(result, form, status, text, False)
    return result


_ERROR_HEADERS: Final = [("content-type", "text/plain; charset=utf-8")]


def _put_headers(
    result: dict[str, Any], form: ReplyForm, headers: Sequence[tuple[Any, Any]]
) -> tuple[str, str]:
    """Put the headers in the form the source takes; the Content-Type and -Encoding they hold.

    One pass over the headers: this runs on every invocation.
    """
    content_type = content_encoding = ""
    # One cache per kind of pair: bytes and text keys never meet (no bytes == str under -b).
    text = _OF_BYTES if headers and type(headers[0][0]) is bytes else _OF_TEXT
    if form.source in ("http", "url"):
        joined: dict[str, str] = {}
        cookies = []
        for pair in headers:
            name, value = text.get(pair) or _text_pair(pair, text)
            if name == "set-cookie":
                cookies.append(value)
                continue
            if name == "content-type":
                content_type = value
            elif name == "content-encoding":
                content_encoding = value
            if name in joined:
                joined[name] += ", " + value
            else:
                joined[name] = value
        result["headers"] = joined
        if cookies:
            result["cookies"] = cookies
        return content_type, content_encoding
    grouped: dict[str, list[str]] = {}
    for pair in headers:
        name, value = text.get(pair) or _text_pair(pair, text)
        if name == "content-type":
            content_type = value
        elif name == "content-encoding":
            content_encoding = value
        if name in grouped:
            grouped[name].append(value)
        else:
            grouped[name] = [value]
    if form.source == "rest" or form.multi_value:
        result["multiValueHeaders"] = grouped
    else:
        result["headers"] = _single_valued(grouped)
    return content_type, content_encoding


def _put_body(
    result: dict[str, Any], form: ReplyForm, status: int, body: str, is_base64: bool
) -> None:
    if form.source == "alb":
        result["statusDescription"] = f"{status} {_REASONS.get(status, '')}".rstrip()
    result["body"] = body
    result["isBase64Encoded"] = is_base64


def _text_pair(
    pair: tuple[Any, Any], cache: dict[tuple[Any, Any], tuple[str, str]]
) -> tuple[str, str]:
    """A checked header as a reply carries it: text, lower-case name, no optional whitespace."""
    name, value = pair
    if type(name) is bytes:
        name, value = name.decode("latin-1"), value.decode("latin-1")
    # Optional whitespace is no part of a value (RFC 9110 5.5); Django's cookies have it.
    text = (name.lower(), value.strip(" \t"))
    if len(cache) >= 1024:
        cache.clear()
    cache[pair] = text
    return text


_OF_BYTES: dict[tuple[Any, Any], tuple[str, str]] = {}
"""Text forms of checked WSGI response headers (bytes pairs)."""
_OF_TEXT: dict[tuple[Any, Any], tuple[str, str]] = {}
"""Text forms of checked ASGI response headers (already text, not yet lower-cased)."""


def _single_valued(grouped: dict[str, list[str]]) -> dict[str, str]:
    single: dict[str, str] = {}
    for name, values in grouped.items():
        if name == "set-cookie":
            single.update(zip(_spellings(name, len(values)), values, strict=True))
        else:
            single[name] = ", ".join(values)
    return single


def _spellings(name: str, count: int) -> list[str]:
    """``count`` distinct casings of ``name``: set-cookie, Set-cookie, sEt-cookie, ..."""
    letters = [index for index, char in enumerate(name) if char.isalpha()]
    if count > 2 ** len(letters):
        raise ValueError(f"cannot spell {name!r} {count} different ways")
    spellings = []
    for number in range(count):
        chars = list(name)
        for bit, index in enumerate(letters):
            if number >> bit & 1:
                chars[index] = chars[index].upper()
        spellings.append("".join(chars))
    return spellings
