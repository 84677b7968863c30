"""Body streams: ``wsgi.input`` over ASGI ``receive()``, ``wsgi.file_wrapper``, ``wsgi.errors``.

The stream knows nothing of threads or loops: it is given ``pull``, which
returns the next piece of the body (``b""`` at its end) or raises
``ClientDisconnected``. Nothing is read before the app asks, and at most one
received piece beyond what the app asked for is held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import IO


class InputStream:
    """The request body as PEP 3333's ``wsgi.input``.

    The piece last pulled is kept as it is, with an offset into it, so a read
    that fits in it costs one copy (the slice the app gets).
    """

    __slots__ = ("_eof", "_offset", "_piece", "_pull")

    def __init__(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._piece = b""
        self._offset = 0
        self._eof = False

    def _next_piece(self) -> bytes:
        """The next piece of the body, or ``b""`` at its end."""
        if self._eof:
            return b""
        piece = self._pull()
        if not piece:
            self._eof = True
        return piece

    def _rest(self) -> bytes:
        """Take what is left of the current piece."""
        rest = self._piece[self._offset :] if self._offset else self._piece
        self._piece, self._offset = b"", 0
        return rest

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._rest()]
            while piece := self._next_piece():
                parts.append(piece)
            return b"".join(parts)
        piece, offset = self._piece, self._offset
        if len(piece) - offset >= size:
            self._offset = offset + size
            return piece[offset : offset + size]
        parts = [self._rest()]
        needed = size - len(parts[0])
        while needed > 0 and (piece := self._next_piece()):
            if len(piece) > needed:
                parts.append(piece[:needed])
                self._piece, self._offset = piece, needed
                break
            parts.append(piece)
            needed -= len(piece)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None or size < 0 else size
        if limit == 0:
            return b""
        parts: list[bytes] = []
        taken = 0
        piece, offset = self._piece, self._offset
        while True:
            end = len(piece) if limit < 0 else min(len(piece), offset + limit - taken)
            newline = piece.find(b"\n", offset, end)
            if newline >= 0 or end < len(piece):
                stop = newline + 1 if newline >= 0 else end
                parts.append(piece[offset:stop])
                self._piece, self._offset = piece, stop
                return b"".join(parts)
            parts.append(piece[offset:] if offset else piece)
            taken += len(piece) - offset
            piece, offset = self._next_piece(), 0
            if not piece:
                self._piece, self._offset = b"", 0
                return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """Drop what is held; the rest of the body is left unread."""
        self._piece, self._offset = b"", 0


class FileWrapper:
    """``wsgi.file_wrapper``: a file sent in blocks, closed when the response ends."""

    __slots__ = ("block_size", "filelike")

    def __init__(self, filelike: IO[bytes], block_size: int = 65536) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.block_size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class ErrorStream:
    """The default ``wsgi.errors``: what the app writes reaches the ``bridge.wsgi`` logger.

    One record per message, not per line: a message ends at ``flush()`` (a
    logging handler flushes after every record, so a traceback arrives whole),
    or at the end of the request, or where a line ends once 64 KiB are
    pending. Text waits per request: it is kept in a context variable, and
    each request runs in a context of its own.

    The level is WARNING: visible under Python's default logging, but below
    the ERROR that error trackers and alerts act on, since what an app writes
    here is mostly a copy of what its own logger already reported (Flask's
    default handler writes every log record here).
    """

    __slots__ = ("_level", "_logger", "_pending")

    LIMIT = 65536

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.WARNING) -> None:
        self._logger = logger or logging.getLogger("bridge.wsgi")
        self._level = level
        self._pending: ContextVar[str] = ContextVar(f"wsgi_errors_{id(self)}", default="")

    def write(self, text: str) -> int:
        pending = self._pending.get() + text
        if len(pending) > self.LIMIT and "\n" in pending:
            whole, _, pending = pending.rpartition("\n")
            self._emit(whole)
        self._pending.set(pending)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """End the message written so far: it becomes one record."""
        pending = self._pending.get()
        if pending:
            self._pending.set("")
            self._emit(pending)

    def _emit(self, text: str) -> None:
        text = text.removesuffix("\n")
        if text.strip():
            self._logger.log(self._level, "%s", text)
