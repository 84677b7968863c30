from __future__ import annotations

import faulthandler
import sys
from collections.abc import Iterator

import hypothesis  # noqa: F401
import pytest

# The import above is for its side effect. hypothesis's pytest plugin imports
# the package late, at the end of a session that did not use it, and pytest's
# assertion rewriting then parses its modules while the bridge's loop threads
# may still run code. On CPython 3.11.7 two threads building ASTs at once can
# fail with "SystemError: AST constructor recursion depth mismatch" and turn a
# green run red. Importing it here, at collection, before any thread starts,
# takes that parse out of the race.


# pytest-timeout (60 s, in pyproject.toml) raises in the main thread, which a
# thread that holds the GIL for ever, or code that swallows the exception, can
# keep from happening. This guard runs in faulthandler's own C thread: past it,
# every thread's stack goes to stderr and the run ends, so a hang fails CI with
# its cause instead of running into CI's time limit with nothing said.
HARD_LIMIT = 240.0


def _terminal_fd(config: pytest.Config) -> int:
    """The stderr the run started with: while a test runs, pytest's fd 2 is its capture file."""
    capturing = getattr(config.pluginmanager.getplugin("capturemanager"), "_global_capturing", None)
    saved = getattr(getattr(capturing, "err", None), "targetfd_save", None)
    return saved if isinstance(saved, int) else sys.__stderr__.fileno()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    faulthandler.dump_traceback_later(HARD_LIMIT, exit=True, file=_terminal_fd(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback, with the docs example's tables; its DSN."""
    from docs.examples.flask_sqlalchemy_app import create_schema
    from tests.postgres import postgres_server

    with postgres_server() as where:
        create_schema(f"postgresql+psycopg://{where}")
        yield where


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["thread", "greenlet"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)
