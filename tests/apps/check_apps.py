"""A Flask app for ``bridge check``'s advice that keeps the current user in a threading.local.

The user comes from the ``user`` cookie, else the query string (a search page
echoing it, say); the view crosses ``await_`` (a cache or an HTTP call) between
setting the local and reading it back, as real views do.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from flask import Flask, request

import bridge

_current = threading.local()

local_user_app = Flask("check_local_user")


@local_user_app.before_request
def remember_user() -> None:
    _current.user = request.cookies.get("user") or request.query_string.decode() or "guest"


@local_user_app.get("/")
def whoami() -> Any:
    bridge.await_(asyncio.sleep(0.01))  # the profile, from an async client
    return {"user": _current.user}
