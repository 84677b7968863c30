"""Legacy sync SQLAlchemy on asyncio drivers under the greenlet executor (issue 15).

In process with SQLite through aiosqlite (the fast path); then a real
PostgreSQL server (asyncpg and psycopg in async mode) under uvicorn, with
httpx clients, for isolation under concurrency and pool waits. Elsewhere:
the thread executor refuses with an error that says what to use, and plain
sync code works through ``bridge.in_greenlet``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import threading
from pathlib import Path
from typing import Any

import greenlet
import httpx
import pytest
import sqlalchemy
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.util import await_ as sqlalchemy_await
from sqlalchemy.util import greenlet_spawn

import bridge
from bridge import AwaitError, to_asgi
from docs.examples.flask_sqlalchemy_app import (
    Note,
    create_app,
    create_schema,
    db,
    disposing_engines,
)
from tests.harness import FakeServer, make_scope
from tests.servers import uvicorn_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # SQLAlchemy's async drivers are asyncio-only


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}"
    create_schema(url)
    return url


@pytest.fixture
async def make_app() -> Any:
    """``create_app`` whose engines are closed on the loop when the test ends.

    A pooled aiosqlite connection must be closed where it was opened; one left to
    reference counting warns as it is freed.
    """
    made: list[Flask] = []

    def make(url: str) -> Flask:
        made.append(create_app(url))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            await greenlet_spawn(db.engine.dispose)


def pool_of(app: Flask) -> Any:
    with app.app_context():
        return db.engine.pool


async def call(app: Any, path: str, method: str = "GET", body: bytes = b"") -> Any:
    return await FakeServer(app, [body]).request(make_scope(path, method=method))


# --- in process, SQLite through aiosqlite ------------------------------------------------------


async def test_orm_writes_and_reads_under_greenlets(sqlite_url: str, make_app: Any) -> None:
    flask_app = make_app(sqlite_url)
    app = to_asgi(flask_app, executor="greenlet")
    for word in (b"one", b"two"):
        added = await call(app, "/notes/ann", "POST", word)
        assert added.status == 200, added.body
    assert json.loads(added.body) == {"count": 2}
    read = await call(app, "/notes/ann")
    assert json.loads(read.body) == {"notes": ["one", "two"]}
    assert pool_of(flask_app).checkedout() == 0  # given back when each request ended


async def test_a_view_that_raises_rolls_its_writes_back(sqlite_url: str, make_app: Any) -> None:
    flask_app = make_app(sqlite_url)
    app = to_asgi(flask_app, executor="greenlet")
    failed = await call(app, "/fail/bob", "POST")
    assert failed.status == 500
    read = await call(app, "/notes/bob")
    assert json.loads(read.body) == {"notes": []}
    assert pool_of(flask_app).checkedout() == 0


async def test_yield_per_rows_are_read_while_the_body_streams(
    sqlite_url: str, make_app: Any
) -> None:
    flask_app = make_app(sqlite_url)
    app = to_asgi(flask_app, executor="greenlet")
    words = [f"w{i}" for i in range(7)]
    for word in words:
        await call(app, "/notes/cy", "POST", word.encode())
    streamed = await call(app, "/stream/cy")
    assert streamed.status == 200
    assert streamed.body.decode().split() == words
    assert len(streamed.messages) > 2  # it did stream, piece by piece
    assert pool_of(flask_app).checkedout() == 0


async def test_a_client_that_leaves_mid_stream_gives_the_connection_back(
    sqlite_url: str, make_app: Any
) -> None:
    flask_app = make_app(sqlite_url)
    app = to_asgi(flask_app, executor="greenlet")
    for i in range(9):
        await call(app, "/notes/di", "POST", f"w{i}".encode())
    pool = pool_of(flask_app)
    invalidated: list[object] = []
    sqlalchemy.event.listen(pool, "invalidate", lambda *args: invalidated.append(args))
    server = FakeServer(app, send_fails_after=2)  # the start and one piece, then a reset
    left = await server.request(make_scope("/stream/di"))
    assert len(left.messages) == 2
    assert pool.checkedout() == 0
    assert invalidated == []  # rolled back and given back whole, not thrown away
    again = await call(app, "/notes/di")
    assert len(json.loads(again.body)["notes"]) == 9


def plain_app(url: str, scopefunc: Any = None) -> Any:
    """A WSGI app on plain SQLAlchemy; it answers with the error its query met, if any."""
    engine = create_engine(url)
    registry = scoped_session(sessionmaker(engine), scopefunc=scopefunc)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            answer = {"value": registry.scalar(select(sqlalchemy.literal(7)))}
        except Exception as error:
            answer = {"error": type(error).__name__, "message": str(error)}
        finally:
            registry.remove()
        start_response("200 OK", [("content-type", "application/json")])
        return [json.dumps(answer).encode()]

    app.engine = engine  # type: ignore[attr-defined]
    return app


def test_under_trio_the_error_says_asyncio_is_needed(sqlite_url: str) -> None:
    import trio

    results: list[Any] = []

    async def main() -> None:
        results.append(await call(to_asgi(plain_app(sqlite_url), executor="greenlet"), "/"))

    trio.run(main)
    answer = json.loads(results[0].body)
    assert answer["error"] == AwaitError.__name__
    assert "asyncio" in answer["message"]


async def test_under_the_thread_executor_the_error_says_what_to_use(sqlite_url: str) -> None:
    # Documented in docs/executors.md: the pool's futures are not thread-safe.
    wsgi_app = plain_app(sqlite_url)
    answers = await asyncio.gather(*(call(to_asgi(wsgi_app), "/") for _ in range(3)))
    for answer in answers:
        error = json.loads(answer.body)
        assert error["error"] == AwaitError.__name__
        assert "executor='greenlet'" in error["message"]
        assert "postgresql+psycopg://" in error["message"]
    assert wsgi_app.engine.pool.checkedout() == 0


def test_plain_sync_code_gets_sqlalchemys_error_without_in_greenlet(sqlite_url: str) -> None:
    # Documented: outside a greenlet worker and outside in_greenlet, SQLAlchemy itself refuses,
    # before any I/O.
    engine = create_engine(sqlite_url)
    with pytest.raises(MissingGreenlet, match="greenlet_spawn"), engine.connect():
        pass


def test_plain_sync_code_works_through_in_greenlet(sqlite_url: str) -> None:
    flask_app = create_app(sqlite_url)
    client = flask_app.test_client()
    for word in (b"one", b"two"):
        assert bridge.in_greenlet(client.post, "/notes/fay", data=word).status_code == 200
    assert bridge.in_greenlet(client.get, "/notes/fay").json == {"notes": ["one", "two"]}
    with flask_app.app_context():
        assert bridge.in_greenlet(lambda: pool_of(flask_app).checkedout()) == 0
        bridge.in_greenlet(db.engine.dispose)  # on this thread's loop, like the queries


def test_in_greenlet_passes_results_errors_and_context_through(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")

    def broken_query() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))

    def count_notes() -> int:
        seen.set("set inside")
        with Session(engine) as session:
            return len(session.scalars(select(Note)).all())

    with pytest.raises(sqlalchemy.exc.OperationalError, match="no_such_table"):
        bridge.in_greenlet(broken_query)
    assert bridge.in_greenlet(count_notes) == 0
    assert seen.get() == "set inside"  # the caller's context, as in a plain call
    bridge.in_greenlet(engine.dispose)


async def test_in_greenlet_in_workers(sqlite_url: str, executor: str) -> None:
    engine = create_engine(sqlite_url)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            answer = {"value": bridge.in_greenlet(count_rows)}
        except AwaitError as error:
            answer = {"error": str(error)}
        start_response("200 OK", [])
        return [json.dumps(answer).encode()]

    def count_rows() -> int:
        with engine.connect() as connection:
            return int(connection.scalar(select(sqlalchemy.literal(3))))

    try:
        answer = json.loads((await call(to_asgi(app, executor=executor), "/")).body)
    finally:
        await greenlet_spawn(engine.dispose)
    if executor == "greenlet":
        assert answer == {"value": 3}  # a greenlet worker is a provider already
    else:
        assert "executor='greenlet'" in answer["error"]


# --- request_scope -----------------------------------------------------------------------------


async def test_request_scope_keeps_one_session_per_request(executor: str) -> None:
    keys: list[tuple[int, int, int]] = []
    started = threading.Barrier(2, timeout=10) if executor == "thread" else None

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        first = bridge.request_scope()
        if started is not None:
            started.wait()  # both requests at once, in two worker threads
        else:
            bridge.await_(asyncio.sleep(0.01))  # the other request's greenlet runs meanwhile
        keys.append((id(first), id(bridge.request_scope()), hash(first)))
        start_response("200 OK", [])
        return [b""]

    asgi = to_asgi(app, executor=executor)
    async with asyncio.TaskGroup() as group:
        for _ in range(2):
            group.create_task(call(asgi, "/"))
    assert len(keys) == 2
    assert all(first == again for first, again, _ in keys)  # stable within a request
    assert keys[0][0] != keys[1][0]  # distinct across requests


def test_request_scope_in_plain_code_is_per_thread() -> None:
    here = bridge.request_scope()
    assert bridge.request_scope() == here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        there = pool.submit(bridge.request_scope).result()
    assert there != here


async def test_a_plain_scoped_session_with_request_scope(sqlite_url: str) -> None:
    wsgi_app = plain_app(sqlite_url, bridge.request_scope)
    app = to_asgi(wsgi_app, executor="greenlet")
    try:
        async with asyncio.TaskGroup() as group:
            calls = [group.create_task(call(app, "/")) for _ in range(20)]
    finally:
        await greenlet_spawn(wsgi_app.engine.dispose)
    assert [json.loads(c.result().body) for c in calls] == [{"value": 7}] * 20


# --- a real PostgreSQL under uvicorn -----------------------------------------------------------


@pytest.fixture(params=["asyncpg", "psycopg_async"])
def pg_url(request: pytest.FixtureRequest, postgres: str) -> str:
    return f"postgresql+{request.param}://{postgres}"


def serve(flask_app: Flask) -> Any:
    asgi = disposing_engines(flask_app, to_asgi(flask_app, executor="greenlet"))
    return uvicorn_server(asgi)


def test_core_and_orm_on_postgres(pg_url: str) -> None:
    flask_app = create_app(pg_url, pool_size=5)
    with serve(flask_app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        owner = f"orm-{pg_url.split('+')[1].split(':')[0]}"
        assert client.post(f"/notes/{owner}", content=b"a").json() == {"count": 1}
        assert client.post(f"/fail/{owner}").status_code == 500
        assert client.get(f"/notes/{owner}").json() == {"notes": ["a"]}
        assert client.get("/sleep", params={"seconds": 0.01}).json() == {"slept": 0.01}
    sync_engine = create_engine(f"postgresql+psycopg://{pg_url.split('://')[1]}")
    with Session(sync_engine) as check:
        assert check.scalars(select(Note.text).where(Note.owner == owner)).all() == ["a"]
        check.execute(text("DELETE FROM note WHERE owner = :o"), {"o": owner})
        check.commit()
    sync_engine.dispose()


async def test_200_concurrent_transactions_each_see_only_their_own_write(pg_url: str) -> None:
    flask_app = create_app(pg_url, pool_size=40, max_overflow=0, pool_timeout=60)
    with serve(flask_app) as server:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            answers = await asyncio.gather(
                *(client.post(f"/isolated/r{i}", params={"wait": "0.05"}) for i in range(200))
            )
        assert [a.status_code for a in answers] == [200] * 200
        assert [a.json()["owners"] for a in answers] == [[f"r{i}"] for i in range(200)]
        assert pool_of(flask_app).checkedout() == 0


async def test_a_full_pool_makes_requests_wait_suspended_while_others_are_answered(
    pg_url: str,
) -> None:
    flask_app = create_app(pg_url, pool_size=2, max_overflow=0, pool_timeout=60)
    with serve(flask_app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            finished: list[str] = []

            async def get(name: str, path: str, **params: Any) -> int:
                answer = await client.get(path, params=params)
                finished.append(name)
                return answer.status_code

            slow = [asyncio.create_task(get(f"slow{i}", "/sleep", seconds=1)) for i in range(4)]
            await asyncio.sleep(0.3)  # two hold the pool's connections, two wait for one
            assert await get("ping", "/ping") == 200
            assert finished == ["ping"]  # answered while all four still wait
            assert await asyncio.gather(*slow) == [200] * 4
        assert pool_of(flask_app).checkedout() == 0


async def test_a_client_leaving_mid_stream_on_postgres_rolls_back_and_keeps_the_connection(
    pg_url: str,
) -> None:
    flask_app = create_app(pg_url, pool_size=1, max_overflow=0)
    app = to_asgi(flask_app, executor="greenlet")
    pool = pool_of(flask_app)
    invalidated: list[object] = []
    sqlalchemy.event.listen(pool, "invalidate", lambda *args: invalidated.append(args))
    owner = f"leave-{pg_url.split('+')[1].split(':')[0]}"
    try:
        for i in range(9):
            await call(app, f"/notes/{owner}", "POST", str(i).encode() * 100_000)
        server = FakeServer(app, send_fails_after=2)  # the start and one piece, then a reset
        left = await server.request(make_scope(f"/stream/{owner}"))
        assert len(left.messages) == 2
        assert pool.checkedout() == 0
        assert invalidated == []  # the cursor closed and the transaction rolled back on the loop
        again = await call(app, f"/notes/{owner}")  # the pool's one connection, still whole
        assert len(json.loads(again.body)["notes"]) == 9
    finally:
        with flask_app.app_context():
            await greenlet_spawn(db.engine.dispose)


async def test_sqlalchemys_awaits_still_run_after_the_client_left() -> None:
    # The clean-up after an interrupt (a rollback, a connection back to its pool) must reach the
    # database, unlike a new await_ from the view, which raises at once.
    ran: list[str] = []

    async def rollback() -> str:
        await asyncio.sleep(0)
        ran.append("rollback")
        return "rolled back"

    async def failing_sink(item: object) -> None:
        raise OSError("connection reset by peer")

    def view(job: Any) -> str:
        job.put(b"first")  # the sink fails: the job is interrupted from here on
        try:
            job.put(b"second")
        except OSError:
            assert greenlet.getcurrent().parent is not None
            return str(sqlalchemy_await(rollback()))
        return "not interrupted"

    executor = bridge.GreenletExecutor()
    job = executor.job(view, failing_sink, contextvars.copy_context(), "GET '/'")
    assert await job.run() == "rolled back"
    assert ran == ["rollback"]


def test_the_docs_example_factory_serves_under_uvicorn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docs.examples.flask_sqlalchemy_app import asgi_app

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}")
    with (
        uvicorn_server(asgi_app()) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        assert client.post("/notes/eve", content=b"hello").json() == {"count": 1}
        assert client.get("/notes/eve").json() == {"notes": ["hello"]}
