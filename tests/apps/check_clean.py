"""A clean Flask app for ``bridge check``: per-request state only in Flask's request."""

from __future__ import annotations

import asyncio
from typing import Any

from flask import Flask, request

import bridge

clean_app = Flask("check_clean")


@clean_app.get("/")
def clean_index() -> Any:
    bridge.await_(asyncio.sleep(0.01))  # the profile, from an async client
    return {"user": request.cookies.get("user") or request.query_string.decode() or "guest"}
