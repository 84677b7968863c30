"""``fallback``: several apps behind one URL space, for moving routes one at a time.

Each request goes to the apps in order; the first that has a route for it
answers. How "no route" is known depends on the app:

* Starlette and FastAPI apps: their router's own no-route-matched hook
  (``Router.default``). An endpoint that answers 404 itself (a missing item)
  has matched, so it stands and nothing runs twice.
* Any other app: by its answer. A response start whose status is one of
  ``statuses`` (404 by default), or a websocket closed before it was accepted,
  means "not mine". Nothing of that answer reaches the client.

The request body the earlier app read is replayed to the next one, up to
``replay_limit`` bytes; an app that read more than that has consumed what
cannot be replayed, and its answer stands.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from typing import Any

from ._detect import interface_of
from ._errors import ConfigurationError
from ._executors import Executor
from ._lifespans import run_lifespans
from ._to_asgi import to_asgi
from ._types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("bridge.fallback")

_ATTEMPT_KEY = "bridge.fallback.attempt"


class _Replay:
    """The request's incoming messages, kept (up to a limit) so a later app can read them again.

    Body bytes and websocket ``bytes`` and ``text`` all count against the
    limit. Once an app has answered, nobody can decline any more, so nothing
    more is kept and what was kept goes as it is read.
    """

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._kept: list[Message] = []
        self._kept_bytes = 0
        self._position = 0
        self.complete = True  # every message read so far is kept
        self.keeping = True

    async def receive(self) -> Message:
        kept = self._kept
        if self._position < len(kept):
            message = kept[self._position]
            if self.keeping:
                self._position += 1
            else:
                del kept[0]  # the position stays 0 once keeping stopped
            return message
        message = await self._receive()
        if self.complete and self.keeping:
            self._kept_bytes += _size(message)
            if self._kept_bytes > self._limit:
                self.complete = False
                kept.clear()
                self._position = 0
            else:
                kept.append(message)
                self._position += 1
        return message

    def rewind(self) -> None:
        self._position = 0

    def stop_keeping(self) -> None:
        """No later app will read: drop what was read, hand out the rest once."""
        if self.keeping:
            self.keeping = False
            del self._kept[: self._position]
            self._position = 0


def _size(message: Message) -> int:
    """What a message adds to the replay: its body, or a websocket frame's payload."""
    payload = message.get("body") or message.get("bytes")
    if payload:
        return len(payload)
    text = message.get("text")
    if not text:
        return 0
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class _Attempt:
    """One app's try at a request: its messages go out unless it turns out not to be its route."""

    def __init__(self, replay: _Replay, send: Send, statuses: Collection[int]) -> None:
        self.replay = replay
        self._send = send
        self._statuses = statuses  # empty for an app whose router hook decides
        self.declined = False
        self._answered = False  # something went out: too late to decline

    def may_decline(self) -> bool:
        return not self._answered and self.replay.complete

    def decline(self) -> None:
        self.declined = True

    async def send(self, message: Message) -> None:
        if self.declined:
            return  # the rest of a declined answer, discarded
        if self.may_decline() and self._declines(message):
            self.declined = True
            return
        if not self._answered:
            self._answered = True
            self.replay.stop_keeping()
        await self._send(message)

    def _declines(self, message: Message) -> bool:
        if not self._statuses:
            return False
        kind: str = message["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            return message.get("status") in self._statuses
        return kind == "websocket.close"  # before an accept: the app has no such route


class _NoRouteHook:
    """Stands in for a Starlette router's ``default``; declines inside ``fallback`` only."""

    def __init__(self, original: ASGIApp) -> None:
        self.original = original

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        attempt = scope.get(_ATTEMPT_KEY)
        if isinstance(attempt, _Attempt) and attempt.may_decline():
            attempt.decline()
            return
        await self.original(scope, receive, send)


def _starlette_router(app: Any) -> Any:
    routing = sys.modules.get("starlette.routing")
    if routing is None:
        return None
    for candidate in (app, getattr(app, "router", None)):
        if isinstance(candidate, routing.Router):
            return candidate
    return None


class _Member:
    """One app of a ``fallback``; ``statuses`` empty when its router's hook decides."""

    def __init__(self, name: str, app: ASGIApp, statuses: frozenset[int]) -> None:
        self.name = name
        self.app = app
        self.statuses = statuses


class Fallback:
    """An ASGI app that tries its members in order; see ``fallback``."""

    def __init__(self, members: list[_Member], *, replay_limit: int, log_fallthrough: bool) -> None:
        self.members = members
        self.replay_limit = replay_limit
        self.log_fallthrough = log_fallthrough

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            apps = [(member.name, member.app) for member in self.members]
            await run_lifespans(apps, scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            await self.members[0].app(scope, receive, send)
            return
        replay = _Replay(receive, self.replay_limit)
        *earlier, last = self.members
        for member in earlier:
            attempt = _Attempt(replay, send, member.statuses)
            attempt_scope = dict(scope)
            attempt_scope[_ATTEMPT_KEY] = attempt
            try:
                await member.app(attempt_scope, replay.receive, attempt.send)
            except Exception:
                if not attempt.declined:
                    raise
                # What an app does after declining (middleware that wanted a
                # response, say) is not the client's business.
                logger.debug("%s failed after declining", member.name, exc_info=True)
            if not attempt.declined:
                return
            replay.rewind()
            if self.log_fallthrough:
                method = scope.get("method", "WEBSOCKET")
                path = scope["path"]
                shown = path if path.isprintable() else repr(path)  # no forged log lines
                logger.info("%s %s: no route in %s, passed on", method, shown, member.name)
        replay.stop_keeping()
        await last.app(dict(scope), replay.receive, send)


def fallback(
    *apps: Any,
    executor: str | Executor = "thread",
    statuses: Collection[int] = (404,),
    replay_limit: int = 65536,
    log_fallthrough: bool = False,
) -> Fallback:
    """One ASGI app made of several: each request goes to the first app that has a route for it.

    :param apps: ASGI or WSGI apps, the new one first; WSGI apps are wrapped
        with ``to_asgi(app, executor=executor)``.
    :param statuses: for apps without a Starlette router, the statuses that
        mean "no such route here".
    :param replay_limit: bytes of request body kept to replay to the next app.
    :param log_fallthrough: log each request passed on, on the ``bridge.fallback``
        logger at INFO, to see which routes still reach the legacy app.
    """
    if not apps:
        raise ConfigurationError("fallback() needs at least one app")
    if replay_limit < 0:
        raise ConfigurationError(f"replay_limit must be >= 0, got {replay_limit}")
    members: list[_Member] = []
    for index, app in enumerate(apps):
        asgi = to_asgi(app, executor=executor) if interface_of(app) == "wsgi" else app
        router = _starlette_router(asgi)
        if router is None:
            decided_by = frozenset(statuses)
        else:
            decided_by = frozenset()
            if not isinstance(router.default, _NoRouteHook):
                router.default = _NoRouteHook(router.default)
        members.append(_Member(f"app {index} ({_describe(app)})", asgi, decided_by))
    return Fallback(members, replay_limit=replay_limit, log_fallthrough=log_fallthrough)


def _describe(app: Any) -> str:
    name = getattr(app, "title", None) or getattr(app, "name", None)
    if isinstance(name, str):
        return f"{type(app).__name__} {name!r}"
    return str(getattr(app, "__qualname__", None) or type(app).__name__)
