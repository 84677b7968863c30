"""The public names: complete, sorted, reported under `bridge`, and typed."""

from __future__ import annotations

import importlib.resources
import inspect

import bridge


def test_all_is_sorted_and_complete() -> None:
    assert list(bridge.__all__) == sorted(bridge.__all__)
    public = {
        name
        for name, value in vars(bridge).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(bridge.__all__)


def test_public_objects_report_the_public_module() -> None:
    for name in bridge.__all__:
        value = getattr(bridge, name)
        if hasattr(value, "__module__"):
            assert value.__module__ == "bridge", name


def test_every_error_is_a_bridge_error_with_a_docstring() -> None:
    exported = [getattr(bridge, name) for name in bridge.__all__]
    errors = [
        value for value in exported if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert len(errors) >= 13
    for error in errors:
        assert issubclass(error, bridge.BridgeError), error
        assert error.__doc__, error
    assert issubclass(bridge.ClientDisconnected, OSError)
    assert issubclass(bridge.InvalidChunk, TypeError)
    assert bridge.RequestBodyTooLarge.status_hint == 413
    assert bridge.BadRequest.status_hint == 400


def test_the_package_is_marked_typed() -> None:
    assert importlib.resources.files("bridge").joinpath("py.typed").is_file()
