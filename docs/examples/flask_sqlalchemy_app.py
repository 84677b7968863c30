"""A legacy Flask-SQLAlchemy app, non-blocking under bridge's greenlet executor.

The views are ordinary sync code; only the database URL names an asyncio
driver (``postgresql+asyncpg://``, ``postgresql+psycopg://``,
``sqlite+aiosqlite://``). Under ``executor="greenlet"`` each query's wait
suspends just its own request::

    DATABASE_URL=postgresql+asyncpg://user@localhost/db \\
        uvicorn --factory docs.examples.flask_sqlalchemy_app:asgi_app
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request, stream_with_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.util import greenlet_spawn

import bridge


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Note(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str]
    text: Mapped[str]


def create_app(url: str, **engine_options: Any) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    db.init_app(app)

    def count(owner: str) -> int:
        query = select(func.count()).select_from(Note).where(Note.owner == owner)
        return int(db.session.scalar(query) or 0)

    @app.post("/notes/<owner>")
    def add(owner: str) -> dict[str, int]:
        db.session.add(Note(owner=owner, text=request.get_data(as_text=True)))
        db.session.commit()
        return {"count": count(owner)}

    @app.get("/notes/<owner>")
    def notes(owner: str) -> dict[str, list[str]]:
        found = db.session.scalars(select(Note).where(Note.owner == owner).order_by(Note.id))
        return {"notes": [note.text for note in found]}

    @app.post("/fail/<owner>")
    def fail(owner: str) -> str:
        db.session.add(Note(owner=owner, text="never committed"))
        db.session.flush()  # the row is written, inside the open transaction
        raise RuntimeError("the view failed after writing")

    @app.get("/stream/<owner>")
    def stream(owner: str) -> Response:
        # yield_per: rows come from the database in batches while the body streams.
        query = select(Note.text).where(Note.owner == owner).order_by(Note.id)
        result = db.session.execute(query.execution_options(yield_per=2))

        def lines() -> Iterator[str]:
            for row in result:
                yield row.text + "\n"

        return Response(stream_with_context(lines()), mimetype="text/plain")

    @app.post("/isolated/<owner>")
    def isolated(owner: str) -> dict[str, list[str]]:
        # Write, wait inside the transaction, look, and roll back.
        db.session.add(Note(owner=owner, text="mine"))
        db.session.flush()
        sleep(float(request.args.get("wait", "0")))
        owners = list(db.session.scalars(select(Note.owner)))
        db.session.rollback()
        return {"owners": owners}

    @app.get("/sleep")
    def wait() -> dict[str, float]:
        seconds = float(request.args["seconds"])
        sleep(seconds)
        return {"slept": seconds}

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    return app


def sleep(seconds: float) -> None:
    """Wait inside the database: the kind of slow query a legacy view has."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})


def create_schema(url: str) -> None:
    """Create the tables through the same database's sync driver (a one-off, before serving)."""
    sync_url = make_url(url)
    backend = sync_url.get_backend_name()
    sync_url = sync_url.set(drivername="postgresql+psycopg" if backend == "postgresql" else backend)
    engine = create_engine(sync_url)
    Base.metadata.create_all(engine)
    engine.dispose()


def disposing_engines(app: Flask, asgi: Any) -> Any:
    """``asgi`` with a lifespan that closes the app's pooled connections on the server's loop.

    The pool's connections belong to the loop that opened them; left open,
    they outlive it and warn as it closes.
    """

    async def application(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await asgi(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with app.app_context():
                    engines = list(db.engines.values())
                for engine in engines:
                    await greenlet_spawn(engine.dispose)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application


def asgi_app() -> Any:
    """The app for uvicorn's ``--factory``: the database from ``DATABASE_URL``."""
    url = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///notes.db")
    create_schema(url)
    flask_app = create_app(url)
    return disposing_engines(flask_app, bridge.to_asgi(flask_app, executor="greenlet"))
