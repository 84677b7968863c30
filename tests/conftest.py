from __future__ import annotations

import hypothesis  # noqa: F401
import pytest

# The import above is for its side effect. hypothesis's pytest plugin imports
# the package late, at the end of a session that did not use it, and pytest's
# assertion rewriting then parses its modules while the bridge's loop threads
# may still run code. On CPython 3.11.7 two threads building ASTs at once can
# fail with "SystemError: AST constructor recursion depth mismatch" and turn a
# green run red. Importing it here, at collection, before any thread starts,
# takes that parse out of the race.


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["thread", "greenlet"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)
