"""``bridge.sqlalchemy.FairQueuePool``: waits for a connection are served in arrival order.

On a real aiosqlite engine, driven as the greenlet executor drives it (sync
pool code in greenlets on the loop); then under uvicorn with PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.util import greenlet_spawn

from bridge.sqlalchemy import FairQueuePool
from docs.examples.flask_sqlalchemy_app import create_app
from tests.test_sqlalchemy import pool_of, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # SQLAlchemy's async drivers are asyncio-only


def fair_engine(tmp_path: Path, **options: Any) -> Engine:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"
    return create_engine(url, poolclass=FairQueuePool, pool_size=1, max_overflow=0, **options)


async def waiting(engine: Engine, name: str, got: list[str]) -> Connection:
    connection = await greenlet_spawn(engine.connect)
    got.append(name)
    return connection


async def test_a_connection_given_back_goes_to_the_longest_waiter(tmp_path: Path) -> None:
    engine = fair_engine(tmp_path)
    pool = engine.pool
    got: list[str] = []
    first = await greenlet_spawn(engine.connect)
    waiters = []
    for name in ("b", "c", "d"):
        waiters.append(asyncio.create_task(waiting(engine, name, got)))
        await asyncio.sleep(0.01)  # b, then c, then d start waiting
    await greenlet_spawn(first.close)
    # Handed straight to b: nothing sits in the pool for a newcomer to take meanwhile.
    assert pool.checkedin() == 0
    for task in waiters:
        connection = await task
        await greenlet_spawn(connection.close)
    assert got == ["b", "c", "d"]
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)
    await greenlet_spawn(engine.dispose)


async def test_a_wait_past_pool_timeout_raises_sqlalchemys_timeout(tmp_path: Path) -> None:
    engine = fair_engine(tmp_path, pool_timeout=0.2)
    first = await greenlet_spawn(engine.connect)
    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.TimeoutError, match="QueuePool limit"):
        await greenlet_spawn(engine.connect)
    assert 0.15 < time.monotonic() - started < 5
    await greenlet_spawn(first.close)
    assert engine.pool.checkedin() == 1  # back in the pool, not handed to the waiter that gave up
    await greenlet_spawn(engine.dispose)


async def test_a_waiter_cancelled_after_it_was_handed_a_connection_passes_it_on(
    tmp_path: Path,
) -> None:
    engine = fair_engine(tmp_path)
    got: list[str] = []
    first = await greenlet_spawn(engine.connect)
    leaver = asyncio.create_task(waiting(engine, "leaver", got))
    await asyncio.sleep(0.01)
    patient = asyncio.create_task(waiting(engine, "patient", got))
    await asyncio.sleep(0.01)

    def give_back_then_cancel_the_first_waiter() -> None:
        first.close()  # handed to the leaver, which has not run yet
        leaver.cancel()

    await greenlet_spawn(give_back_then_cancel_the_first_waiter)
    with pytest.raises(asyncio.CancelledError):
        await leaver
    connection = await asyncio.wait_for(patient, 5)
    assert got == ["patient"]
    await greenlet_spawn(connection.close)
    assert (engine.pool.checkedin(), engine.pool.checkedout()) == (1, 0)
    await greenlet_spawn(engine.dispose)


async def test_under_uvicorn_requests_get_the_pool_in_the_order_they_asked(
    postgres: str,
) -> None:
    flask_app = create_app(
        f"postgresql+asyncpg://{postgres}",
        poolclass=FairQueuePool,
        pool_size=2,
        max_overflow=0,
        pool_timeout=60,
    )
    with serve(flask_app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            finished: list[int] = []

            async def slow(number: int) -> int:
                answer = await client.get("/sleep", params={"seconds": 0.15})
                finished.append(number)
                return answer.status_code

            tasks = []
            for number in range(8):
                tasks.append(asyncio.create_task(slow(number)))
                await asyncio.sleep(0.03)  # they ask in order, while two hold the pool
            assert await asyncio.gather(*tasks) == [200] * 8
        # Two at a time, in the order they asked: 0 1 | 2 3 | 4 5 | 6 7.
        assert [sorted(finished[i : i + 2]) for i in range(0, 8, 2)] == [
            [0, 1],
            [2, 3],
            [4, 5],
            [6, 7],
        ]
        assert pool_of(flask_app).checkedout() == 0


async def test_pool_use_lifo_gives_the_last_connection_returned(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"
    engine = create_engine(url, poolclass=FairQueuePool, pool_size=2, pool_use_lifo=True)

    def raw(connection: Connection) -> object:
        return connection.connection.dbapi_connection

    first = await greenlet_spawn(engine.connect)
    second = await greenlet_spawn(engine.connect)
    first_raw, second_raw = raw(first), raw(second)
    await greenlet_spawn(first.close)
    await greenlet_spawn(second.close)  # returned last
    again = await greenlet_spawn(engine.connect)
    assert raw(again) is second_raw and raw(again) is not first_raw
    await greenlet_spawn(again.close)
    await greenlet_spawn(engine.dispose)
