"""Finding an app from ``module:attribute`` or ``module:factory()`` on the command line."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from ._errors import ConfigurationError

_MISSING = object()


def load_target(target: str) -> Any:
    """The object named by ``target``; a trailing ``()`` calls it (an app factory)."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigurationError(
            f"{target!r} is not of the form module:app (for example myproject.wsgi:application, "
            "or myproject.main:create_app() for a factory)"
        )
    call = attribute.endswith("()")
    if call:
        attribute = attribute[:-2]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as uvicorn and gunicorn do: apps of this directory
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (run from the directory that holds it, "
                "or add it to PYTHONPATH)"
            ) from error
        raise
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, _MISSING)
        if found is _MISSING:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}")
    if call:
        if not callable(found):
            raise ConfigurationError(f"{target!r} calls {attribute!r}, which is not callable")
        found = found()
    return found
