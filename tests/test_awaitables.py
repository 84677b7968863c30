"""Awaitables bridge did not create, and crossings nested inside each other.

granian's ``receive()`` returns a ``PyFutureAwaitable``: its ``__await__``
gives an iterator with ``__next__`` and no ``send``/``throw``. Python's own
``await`` handles that; anything in bridge that steps an awaitable by hand
must too. ``Handed`` below is such an awaitable.

Nested crossings: sync code awaits async code that calls sync code again,
any number of levels deep, through either executor; the greenlet or thread
that drives an inner job changes when the outer one moves on.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import bridge
from bridge import to_asgi
from tests.harness import FakeServer, make_scope


class Handed:
    """An awaitable whose iterator has only ``__iter__``/``__next__``, as granian's.

    ``suspend``: the first step yields an asyncio future (resolved soon), as
    granian's does when the message is not there yet. Only asyncio can drive
    that; with ``suspend=False`` the value is at hand (any loop).
    """

    def __init__(self, value: Any, *, suspend: bool = False) -> None:
        self.value = value
        self.suspend = suspend
        self.future: asyncio.Future[None] | None = None

    def __await__(self) -> Iterator[Any]:
        return self

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.suspend and self.future is None:
            loop = asyncio.get_running_loop()
            self.future = loop.create_future()
            loop.call_soon(self.future.set_result, None)
            self.future._asyncio_future_blocking = True
            return self.future
        raise StopIteration(self.value)


def suspends(anyio_backend: str) -> list[bool]:
    return [False, True] if anyio_backend == "asyncio" else [False]


def post(length: int) -> dict[str, Any]:
    return make_scope("/upload", method="POST", headers=[(b"content-length", str(length).encode())])


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def handing_server(wrapped: Any, pieces: list[bytes], suspend: bool) -> Any:
    """A server whose ``receive()`` is a plain function returning a ``Handed``."""

    async def server(scope: Any, receive: Any, send: Any) -> None:
        left = list(pieces)
        done = anyio.Event()

        async def after_the_response() -> Any:
            await done.wait()
            return {"type": "http.disconnect"}

        def granian_receive() -> Awaitable[Any]:
            if left:
                piece = left.pop(0)
                message = {"type": "http.request", "body": piece, "more_body": bool(left)}
                return Handed(message, suspend=suspend)
            return after_the_response()

        async def recording_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await wrapped(scope, granian_receive, recording_send)

    return server


# --- item 1: any awaitable ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("body_timeout", [30.0, None])
async def test_a_receive_that_returns_an_iterator_awaitable_serves_the_body(
    executor: str, anyio_backend: str, body_timeout: float | None
) -> None:
    for suspend in suspends(anyio_backend):
        wrapped = to_asgi(echo, executor=executor, body_timeout=body_timeout)
        server = handing_server(wrapped, [b"abc", b"def", b""], suspend)
        exchange = await FakeServer(server).request(post(6), timeout=5)
        assert exchange.error is None, (suspend, exchange.error)
        assert exchange.status == 200
        assert exchange.body == b"abcdef"


@pytest.mark.anyio
async def test_a_streamed_response_watches_an_iterator_awaitable_receive(
    executor: str, anyio_backend: str
) -> None:
    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"one"
        yield environ["wsgi.input"].read()
        yield b"three"

    for suspend in suspends(anyio_backend):
        wrapped = to_asgi(streaming, executor=executor)
        server = handing_server(wrapped, [b"two"], suspend)
        exchange = await FakeServer(server).request(post(3), timeout=5)
        assert exchange.error is None, (suspend, exchange.error)
        assert exchange.body == b"onetwothree"


@pytest.mark.anyio
async def test_await_in_a_view_takes_an_iterator_awaitable(
    executor: str, anyio_backend: str
) -> None:
    results: list[Any] = []

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        results.extend(
            bridge.await_(Handed(f"handed-{suspend}", suspend=suspend))
            for suspend in suspends(anyio_backend)
        )
        start_response("200 OK", [])
        return [b"ok"]

    exchange = await FakeServer(to_asgi(view, executor=executor)).request(make_scope())
    assert exchange.error is None
    assert exchange.body == b"ok"
    assert results == [f"handed-{suspend}" for suspend in suspends(anyio_backend)]


@pytest.mark.anyio
async def test_sync_to_async_code_can_await_an_iterator_awaitable(
    executor: str, anyio_backend: str
) -> None:
    def work(suspend: bool) -> Any:
        return bridge.await_(Handed(("handed", suspend), suspend=suspend))

    for suspend in suspends(anyio_backend):
        result = await bridge.sync_to_async(work, executor=executor)(suspend)
        assert result == ("handed", suspend)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_cancelling_a_wait_on_an_iterator_awaitable_unwinds_the_view(
    executor: str,
) -> None:
    """The cancellation reaches an awaitable with no ``throw`` as Python's ``await`` does."""
    unwound = threading.Event()
    raised: list[BaseException] = []

    class Pending:
        """A future that never resolves, behind an iterator with no ``send``/``throw``."""

        def __await__(self) -> Iterator[Any]:
            return self

        def __iter__(self) -> Iterator[Any]:
            return self

        def __next__(self) -> Any:
            future = asyncio.get_running_loop().create_future()
            future._asyncio_future_blocking = True
            return future

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            bridge.await_(Pending())
        except BaseException as error:
            raised.append(error)
            raise
        finally:
            unwound.set()
        return []

    with anyio.move_on_after(0.2):
        await to_asgi(view, executor=executor)(make_scope(), _never, _discard)
    assert await anyio.to_thread.run_sync(unwound.wait, 5)
    assert raised
    assert not isinstance(raised[0], AttributeError), raised


async def _never() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError


async def _discard(message: dict[str, Any]) -> None:
    return None


# --- item 2: nested crossings --------------------------------------------------------------


async def deepest() -> str:
    await anyio.lowlevel.checkpoint()
    return "deep"


def chain(levels: tuple[tuple[str, str], ...]) -> Callable[[], Awaitable[str]]:
    """An async function: ``sync_to_async`` at each level, back to async through ``how``.

    ``levels`` is ``((executor, how), ...)`` from the outside in; ``how`` is
    ``"await_"`` or ``"async_to_sync"``. The innermost sync code awaits ``deepest``.
    """
    if not levels:
        return deepest
    (executor, how), rest = levels[0], levels[1:]
    inner = chain(rest)

    def sync_side() -> str:
        if how == "await_":
            return bridge.await_(inner())
        return bridge.async_to_sync(inner)()

    async def level() -> str:
        return await bridge.sync_to_async(sync_side, executor=executor)()

    return level


EXECUTORS = ("thread", "greenlet")
HOWS = ("await_", "async_to_sync")
MIXES = [
    levels
    for depth in (1, 2, 3)
    for levels in itertools.product(itertools.product(EXECUTORS, HOWS), repeat=depth)
    if depth < 3 or len({how for _, how in levels}) == 1
] + [
    (("greenlet", "await_"),) * 6,
    (("greenlet", "await_"), ("thread", "await_")) * 3,
    (("thread", "async_to_sync"), ("greenlet", "await_")) * 3,
]


def name(levels: tuple[tuple[str, str], ...]) -> str:
    return ">".join(f"{executor}-{how}" for executor, how in levels)


@pytest.mark.anyio
@pytest.mark.parametrize("levels", MIXES, ids=name)
async def test_nested_crossings_of_any_depth_and_mix(
    levels: tuple[tuple[str, str], ...],
) -> None:
    assert await chain(levels)() == "deep"


@pytest.mark.anyio
async def test_the_issue_shape_greenlet_in_greenlet() -> None:
    async def middle() -> str:
        return await bridge.sync_to_async(inner, executor="greenlet")()

    def inner() -> str:
        return bridge.await_(deepest())

    def outer() -> str:
        return bridge.await_(middle())

    assert await bridge.sync_to_async(outer, executor="greenlet")() == "deep"


@pytest.mark.anyio
async def test_many_nested_chains_at_once_share_the_worker_greenlets() -> None:
    """Interleaved chains: a worker freed by one is reused inside another's inner step."""
    mixes = [levels for levels in MIXES if len(levels) >= 2]
    results: list[str] = []

    async def one(levels: tuple[tuple[str, str], ...]) -> None:
        results.extend([await chain(levels)() for _ in range(3)])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for levels in mixes:
                group.start_soon(one, levels)
    assert results == ["deep"] * (3 * len(mixes))


@pytest.mark.anyio
async def test_nested_crossings_inside_a_to_asgi_view(executor: str) -> None:
    levels = (("greenlet", "await_"), ("thread", "await_"), ("greenlet", "async_to_sync"))

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [bridge.await_(chain(levels)()).encode()]

    exchange = await FakeServer(to_asgi(view, executor=executor)).request(make_scope())
    assert exchange.error is None
    assert exchange.body == b"deep"


@pytest.mark.anyio
async def test_an_error_deep_in_a_nested_chain_reaches_the_top() -> None:
    async def fails() -> str:
        await anyio.lowlevel.checkpoint()
        raise LookupError("from the bottom")

    def bottom() -> str:
        return bridge.await_(fails())

    async def middle() -> str:
        return await bridge.sync_to_async(bottom, executor="greenlet")()

    def top() -> str:
        return bridge.await_(middle())

    with pytest.raises(LookupError, match="from the bottom"):
        await bridge.sync_to_async(top, executor="greenlet")()
    # The workers are whole again: the same chain succeeds afterwards.
    assert await chain((("greenlet", "await_"),) * 3)() == "deep"


@pytest.mark.anyio
async def test_a_worker_greenlets_parent_is_the_greenlet_driving_it_now() -> None:
    """The contract code like SQLAlchemy's ``await_only`` relies on, at every step."""
    import greenlet

    loop_greenlet = greenlet.getcurrent()
    parents: list[tuple[str, bool]] = []

    def inner() -> str:
        me = greenlet.getcurrent()
        # The first step runs inline in the outer worker, which drives us there.
        parents.append(("first", me.parent is not loop_greenlet))
        result = bridge.await_(deepest())  # suspends: the loop task resumes us from then on
        parents.append(("after", me.parent is loop_greenlet))
        return result

    async def middle() -> str:
        return await bridge.sync_to_async(inner, executor="greenlet")()

    def outer() -> str:
        return bridge.await_(middle())

    assert await bridge.sync_to_async(outer, executor="greenlet")() == "deep"
    assert parents == [("first", True), ("after", True)]


# --- the body deadline around a receive() that opens its own cancel scope -----------------


@pytest.mark.anyio
async def test_a_stalled_receive_with_its_own_cancel_scope_still_times_out(
    executor: str,
) -> None:
    """The deadline nests with a scope the server's receive() enters in its first step."""
    raised: list[BaseException] = []

    def reader(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except Exception as error:
            raised.append(error)
            raise
        return []

    async def server(scope: Any, receive: Any, send: Any) -> None:
        async def scoped_receive() -> Any:
            with anyio.fail_after(60):  # the server's own, far longer deadline
                await anyio.sleep_forever()
            raise AssertionError

        await wrapped(scope, scoped_receive, send)

    wrapped = to_asgi(reader, executor=executor, body_timeout=0.2)
    exchange = await FakeServer(server).request(post(10), timeout=5)
    assert exchange.status == 408
    assert [type(error) for error in raised] == [bridge.BodyTimeout]
