"""Thread-affine state in the app's own code, which no greenlet may share safely.

Under the greenlet executor every request runs on the loop's one thread, so a
``threading.local`` is shared by the requests in flight, a lock held across
``await_`` is acquired by the next request on the same thread (a hang, or an
RLock that lets it in), and a ``scoped_session`` without ``scopefunc`` hands
one session to every request. Such state is found where it usually lives:
module globals and class attributes of the app's own modules (not the standard
library, not installed packages), reached from the target module or imported
while the app was loaded and checked.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
import types
from collections.abc import Iterable, Iterator
from typing import Any

_LOCKS: tuple[type, ...] = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading._PyRLock,  # type: ignore[attr-defined]
    threading.Condition,
    threading.Semaphore,
)


def _installed_roots() -> tuple[str, ...]:
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {os.path.realpath(sysconfig.get_paths()[key]) for key in keys}
    roots.add(os.path.dirname(os.path.realpath(__file__)))  # the bridge itself
    return tuple(root + os.sep for root in roots)


def _own(module: Any, roots: tuple[str, ...]) -> bool:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return False
    return not os.path.realpath(path).startswith(roots)


def own_modules(target_module: str, loaded_before: Iterable[str] | None) -> list[types.ModuleType]:
    """The app's own modules: imported since ``loaded_before``, or reached from the target's."""
    roots = _installed_roots()
    names = set(sys.modules) - set(loaded_before) if loaded_before is not None else set()
    names.add(target_module)
    found: dict[str, types.ModuleType] = {}
    pending = [sys.modules[name] for name in names if name in sys.modules]
    while pending:
        module = pending.pop()
        if module.__name__ in found or not _own(module, roots):
            continue
        found[module.__name__] = module
        for value in list(vars(module).values()):
            # A module it imports, or the module an imported function or class comes from.
            origin = sys.modules.get(_module_of(value))
            if origin is not None and origin.__name__ not in found:
                pending.append(origin)
    return [found[name] for name in sorted(found)]


def _module_of(value: Any) -> str:
    """Where a module, class or function was defined, or an object's class was.

    Only ``type(value)`` is asked of an object: a proxy (werkzeug's ``request``)
    would raise outside a request when asked anything itself.
    """
    kind = type(value)
    if issubclass(kind, types.ModuleType):
        return str(value.__name__)
    if issubclass(kind, type) or kind in (types.FunctionType, types.BuiltinFunctionType):
        return str(getattr(value, "__module__", "") or "")
    return str(kind.__module__)


def _kind(value: Any) -> str | None:
    kind = type(value)
    if issubclass(kind, threading.local):
        return "a threading.local"
    if issubclass(kind, _LOCKS):
        return f"a {kind.__name__} (a lock)"
    scoping = sys.modules.get("sqlalchemy.orm.scoping")
    if (
        scoping is not None
        and issubclass(kind, scoping.scoped_session)
        and type(value.registry).__name__ == "ThreadLocalRegistry"
    ):
        return "a scoped_session without scopefunc (one session per thread)"
    return None


def _places(module: types.ModuleType) -> Iterator[tuple[str, Any]]:
    for name, value in list(vars(module).items()):
        yield f"{module.__name__}.{name}", value
        kind = type(value)
        if issubclass(kind, type) and value.__module__ == module.__name__:
            for attribute, member in list(vars(value).items()):
                yield f"{module.__name__}.{name}.{attribute}", member
        elif kind.__module__ == module.__name__:
            # One level into the app's own objects, for db.session-style holders.
            try:
                members = dict(object.__getattribute__(value, "__dict__"))
            except AttributeError:
                continue
            for attribute, member in members.items():
                yield f"{module.__name__}.{name}.{attribute}", member


def thread_affine_state(app: Any, modules: list[types.ModuleType]) -> list[str]:
    """What was found, one line each, naming where it lives."""
    found = []
    if _uses_django(app, modules):
        found.append(
            "Django: its ORM refuses calls on the loop's thread and keeps one connection "
            "per thread, closed by its end-of-request clean-up"
        )
    seen: set[int] = set()
    for module in modules:
        for place, value in _places(module):
            kind = _kind(value)
            if kind is not None and id(value) not in seen:
                seen.add(id(value))
                found.append(f"{place} is {kind}")
    return found


def _uses_django(app: Any, modules: list[types.ModuleType]) -> bool:
    """The app is Django's handler, or the app's own code imports from Django."""
    if type(app).__module__.startswith("django."):
        return True
    for module in modules:
        for value in list(vars(module).values()):
            if _module_of(value).split(".")[0] == "django":
                return True
    return False
