"""Clients that misbehave on purpose, and one that does not, for the fault tests and the soak.

The faults use raw sockets, framed and parsed with h11 where a reply is read,
so a response cut short is told apart from a complete one:

* ``app_fault(port, kind)``: ask a ``/fault/<kind>`` route and check the
  answer each kind must get (a clean 500, or a response cut short).
* ``leave_mid_upload``, ``leave_mid_download``, ``leave_before_response``:
  clients that go away at those points (with a FIN or a reset).
* ``slow_reader``, ``slow_writer``: clients that read or send in small pieces
  with pauses; slow but correct, so they must get a correct answer.

``GoodClient`` is the well-behaved one (httpx). Every wait is bounded.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import h11
import httpx

HOST = "127.0.0.1"
TIMEOUT = 10.0
MIB = 1024 * 1024


class WrongAnswer(AssertionError):
    """The server answered a client differently from what that client must get."""


@dataclass
class Reply:
    """A response as read off the socket; ``complete`` when its framing said it ended there."""

    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False


def connect(port: int, rcvbuf: int | None = None, timeout: float = TIMEOUT) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if rcvbuf is not None:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((HOST, port))
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a reset (RST), as a client that crashed does: no FIN handshake."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def request_bytes(method: str, target: str, length: int | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: faults", "Connection: close"]
    if length is not None:
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_reply(sock: socket.socket, method: bytes = b"GET", limit: int = 64 * MIB) -> Reply:
    """Read one response to the end of its framing or of the connection, whichever is first."""
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"x")]))
    if method != b"GET":  # the request this parser pretends it sent had no body
        parser.send(h11.EndOfMessage())
    reply, body = Reply(), bytearray()
    while len(body) <= limit:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError:
            break  # closed before its end: a response cut short
        if event is h11.NEED_DATA:
            try:
                parser.receive_data(sock.recv(65536))
            except ConnectionResetError:
                parser.receive_data(b"")
        elif isinstance(event, h11.Response):
            reply.status = event.status_code
            reply.headers = dict(event.headers)
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            reply.complete = True
            break
        elif isinstance(event, h11.ConnectionClosed):
            break
    reply.body = bytes(body)
    return reply


def get(port: int, target: str) -> Reply:
    with connect(port) as sock:
        sock.sendall(request_bytes("GET", target))
        return read_reply(sock)


# --- Apps that fail ------------------------------------------------------------------------

# What each /fault/<kind> must look like to the client: (status, complete).
EXPECTED: dict[str, tuple[int, bool]] = {
    "raise-before-start": (500, True),
    "raise-after-start": (500, True),
    "raise-mid-body": (200, False),
    "raise-in-close": (200, True),
    "no-start": (500, True),
    "unfinished": (200, False),
}


def app_fault(port: int, kind: str) -> None:
    reply = get(port, f"/fault/{kind}")
    status, complete = EXPECTED[kind]
    if (reply.status, reply.complete) != (status, complete):
        raise WrongAnswer(
            f"/fault/{kind}: wanted {status} {'complete' if complete else 'cut short'}, got "
            f"{reply.status} {'complete' if reply.complete else 'cut short'} {reply.body[:80]!r}"
        )
    if kind == "raise-in-close" and reply.body != b"done":
        raise WrongAnswer(f"/fault/raise-in-close: the body was {reply.body[:80]!r}")


# --- Clients that leave --------------------------------------------------------------------


def leave_mid_upload(port: int, declared: int = MIB, abrupt: bool = False) -> None:
    """Declare ``declared`` bytes for ``/slow-read``, send half, and go."""
    sock = connect(port)
    try:
        sock.sendall(request_bytes("POST", "/slow-read?delay=0.001", declared))
        sock.sendall(b"u" * (declared // 2))
        time.sleep(0.02)  # long enough for the app to be reading, most times
    finally:
        if abrupt:
            reset(sock)
        else:
            sock.close()


def leave_mid_download(port: int, size: int = 256 * MIB, token: str = "") -> int:
    """Ask for a big stream, read its head and a little of it, then reset. Returns bytes read."""
    sock = connect(port)
    try:
        sock.sendall(request_bytes("GET", f"/stream?size={size}&token={token}"))
        received = 0
        while received < 4096:
            piece = sock.recv(65536)
            if not piece:
                raise WrongAnswer("the stream ended before the client left")
            if received == 0 and not piece.startswith(b"HTTP/1.1 200"):
                raise WrongAnswer(f"the stream did not start with a 200: {piece[:80]!r}")
            received += len(piece)
        return received
    finally:
        reset(sock)


def stalled_upload(port: int, declared: int = 100_000, limit: float = 30) -> Reply:
    """Declare ``declared`` bytes for ``/echo``, send a thousand, then nothing; read the answer."""
    with connect(port, timeout=limit) as sock:
        sock.sendall(request_bytes("POST", "/echo", declared) + b"u" * 1000)
        return read_reply(sock, b"POST")


def leave_before_response(port: int, seconds: float = 0.2) -> None:
    """Ask for an answer that takes ``seconds``; leave before it comes."""
    with connect(port) as sock:
        sock.sendall(request_bytes("GET", f"/hang?seconds={seconds}"))
        time.sleep(0.02)


# --- Clients that are slow ------------------------------------------------------------------


@contextlib.contextmanager
def stalled_reader(port: int, size: int, token: str) -> Iterator[socket.socket]:
    """A client that reads a stream's head and then nothing more, until the block ends (reset)."""
    sock = connect(port, rcvbuf=16384)
    try:
        sock.sendall(request_bytes("GET", f"/stream?size={size}&token={token}"))
        head = sock.recv(1024)
        if not head.startswith(b"HTTP/1.1 200"):
            raise WrongAnswer(f"the stream did not start with a 200: {head[:80]!r}")
        yield sock
    finally:
        reset(sock)


def slow_reader(
    port: int, size: int = 256 * 1024, piece: int = 16384, pause: float = 0.005, limit: float = 20
) -> int:
    """Read a ``size`` stream ``piece`` bytes at a time, with pauses, through a small window."""
    deadline = time.monotonic() + limit
    with connect(port, rcvbuf=piece) as sock:
        sock.sendall(request_bytes("GET", f"/stream?size={size}"))
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"x")]))
        received = 0
        while time.monotonic() < deadline:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                parser.receive_data(sock.recv(piece))
                time.sleep(pause)
            elif isinstance(event, h11.Response) and event.status_code != 200:
                raise WrongAnswer(f"the slow reader got {event.status_code}")
            elif isinstance(event, h11.Data):
                received += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        if received != size:
            raise WrongAnswer(f"the slow reader got {received} of {size} bytes")
        return received


def slow_writer(
    port: int,
    size: int = 4096,
    piece: int = 256,
    pause: float = 0.005,
    hurry: threading.Event | None = None,
    started: threading.Event | None = None,
    limit: float = 20,
) -> None:
    """POST ``size`` bytes to ``/echo`` in ``piece``-byte dribbles; check the echo.

    ``started`` is set once the first dribble went out. Once ``hurry`` is set,
    the rest goes at once (so a test keeps writers slow exactly as long as it
    needs them to be).
    """
    body = os.urandom(size)
    deadline = time.monotonic() + limit
    with connect(port) as sock:
        sock.sendall(request_bytes("POST", "/echo", size))
        sent = 0
        while sent < size:
            if (hurry is not None and hurry.is_set()) or time.monotonic() > deadline:
                sock.sendall(body[sent:])
                break
            sock.sendall(body[sent : sent + piece])
            sent += piece
            if started is not None:
                started.set()
            time.sleep(pause)
        reply = read_reply(sock, b"POST")
    if reply.status != 200 or not reply.complete or reply.body != body:
        raise WrongAnswer(
            f"the slow writer got {reply.status}, {len(reply.body)} of {size} bytes back"
        )


def gated_stream(port: int, token: str, release: Callable[[], object]) -> bytes:
    """Read ``/gated`` up to its first chunk, ``release`` the gate, then read the rest."""
    with connect(port) as sock:
        sock.sendall(request_bytes("GET", f"/gated?token={token}"))
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"x")]))
        body = b""
        for _ in range(1000):  # events of a two-chunk response: far fewer
            event = parser.next_event()
            if event is h11.NEED_DATA:
                parser.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Data):
                if not body:
                    release()  # only now may the app make its second chunk
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return body
        raise WrongAnswer(f"/gated did not end; got {body!r}")


# --- All faults by name -----------------------------------------------------------------


def _app_fault(kind: str) -> Callable[[int], None]:
    return lambda port: app_fault(port, kind)


CLIENT_FAULTS: dict[str, Callable[[int], object]] = {
    "leave-mid-upload": leave_mid_upload,
    "reset-mid-upload": lambda port: leave_mid_upload(port, abrupt=True),
    "leave-mid-download": leave_mid_download,
    "leave-before-response": leave_before_response,
    "slow-reader": slow_reader,
    "slow-writer": slow_writer,
}
FAULTS: dict[str, Callable[[int], object]] = {
    **{f"app-{kind}": _app_fault(kind) for kind in EXPECTED},
    **CLIENT_FAULTS,
}


# --- The well-behaved client --------------------------------------------------------------


class GoodClient:
    """Normal requests over keep-alive; any wrong answer or transport error raises."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.client = httpx.Client(base_url=url, timeout=timeout)

    def ok(self) -> None:
        response = self.client.get("/ok")
        if response.status_code != 200 or response.content != b"ok":
            raise WrongAnswer(f"/ok answered {response.status_code} {response.content[:80]!r}")

    def echo(self, size: int = 100_000) -> None:
        body = os.urandom(size)
        response = self.client.post("/echo", content=body)
        if response.status_code != 200 or response.content != body:
            raise WrongAnswer(f"/echo answered {response.status_code}, {len(response.content)} B")

    def stream(self, size: int = MIB) -> None:
        received = 0
        with self.client.stream("GET", "/stream", params={"size": str(size)}) as response:
            if response.status_code != 200:
                raise WrongAnswer(f"/stream answered {response.status_code}")
            for piece in response.iter_raw(65536):
                received += len(piece)
        if received != size:
            raise WrongAnswer(f"/stream sent {received} of {size} bytes")

    def accounting(self, heavy: bool = False) -> dict[str, int]:
        response = self.client.get("/_accounting", params={"heavy": "1" if heavy else "0"})
        response.raise_for_status()
        data: dict[str, int] = response.json()
        return data

    def settled(self) -> dict[str, int]:
        """A full reading once two in a row agree (bounded), so a closing socket is not counted."""
        previous = self.accounting(heavy=True)
        for _ in range(50):
            time.sleep(0.05)
            reading = self.accounting(heavy=True)
            if counts(reading) == counts(previous):
                return reading
            previous = reading
        return previous

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> GoodClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Accounting -----------------------------------------------------------------------------

# What must come back to its baseline (or below) once faults are over.
COUNTED = (
    "threads_outside_pool",
    "pool_threads",
    "pool_busy",
    "greenlets",
    "greenlets_busy",
    "tasks",
    "fds",
)


def counts(reading: dict[str, int]) -> dict[str, int]:
    """The counted part of an ``/_accounting`` reading."""
    derived = {"threads_outside_pool": reading["threads"] - reading["pool_threads"]}
    return {key: derived.get(key, reading.get(key, 0)) for key in COUNTED}


def above_baseline(
    good: GoodClient, baseline: dict[str, int], keys: tuple[str, ...], timeout: float
) -> dict[str, tuple[int, int]]:
    """What is still above its baseline after up to ``timeout`` s: {name: (baseline, now)}."""
    base = counts(baseline)
    deadline = time.monotonic() + timeout
    while True:
        now = counts(good.accounting(heavy=True))
        over = {key: (base[key], now[key]) for key in keys if now[key] > base[key]}
        if not over or time.monotonic() > deadline:
            return over
        time.sleep(0.05)


def burst(url: str, count: int, path: str = "/hang?seconds=0.2") -> None:
    """``count`` requests at once, each held 0.2 s: pools grow to ``count``.

    ``/hang`` holds a bridge worker and a server thread; ``/_sleep?seconds=0.2``
    holds only the server's.
    """

    def one(_: int) -> int:
        return httpx.get(f"{url}{path}", timeout=TIMEOUT).status_code

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    if statuses != [200] * count:
        raise WrongAnswer(f"a burst of {count} {path} got {statuses}")
