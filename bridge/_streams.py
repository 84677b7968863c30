"""Body streams: ``wsgi.input`` over ASGI ``receive()``, ``wsgi.file_wrapper``, ``wsgi.errors``.

The stream knows nothing of threads or loops: it is given ``pull``, which
returns the next piece of the body (``b""`` at its end) or raises
``ClientDisconnected``. Nothing is read before the app asks, and at most one
received piece beyond what the app asked for is held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import IO


class InputStream:
    """The request body as PEP 3333's ``wsgi.input``."""

    __slots__ = ("_buffer", "_eof", "_pull")

    def __init__(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        """Pull one more piece into the buffer; False at the end of the body."""
        while not self._eof:
            piece = self._pull()
            if piece:
                self._buffer += piece
                return True
            self._eof = True
        return False

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            pieces = [bytes(self._buffer)]
            self._buffer.clear()
            while not self._eof:
                piece = self._pull()
                if piece:
                    pieces.append(piece)
                else:
                    self._eof = True
            return b"".join(pieces)
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        start = 0
        while True:
            newline = self._buffer.find(b"\n", start)
            if newline >= 0:
                end = newline + 1
                break
            if 0 <= limit <= len(self._buffer):
                end = len(self._buffer)
                break
            start = len(self._buffer)
            if not self._fill():
                end = len(self._buffer)
                break
        if 0 <= limit < end:
            end = limit
        return self._take(end)

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
        """Drop what is buffered; the rest of the body is left unread."""
        self._buffer.clear()


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
    """The default ``wsgi.errors``: what the app writes goes to the ``bridge.wsgi`` logger."""

    __slots__ = ("_logger", "_pending")

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("bridge.wsgi")
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._logger.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            self._logger.error("%s", self._pending)
            self._pending = ""
