"""Quickstart: a legacy Flask app mounted inside a FastAPI app."""

from fastapi import FastAPI
from flask import Flask, redirect, request, url_for

import bridge

legacy = Flask(__name__)


@legacy.get("/")
def legacy_index() -> dict[str, str]:
    # Under the mount, Flask sees SCRIPT_NAME=/legacy: url_for and redirects carry it.
    return {"script_root": request.script_root, "self": url_for("legacy_index")}


@legacy.get("/old-home")
def old_home():  # type: ignore[no-untyped-def]
    return redirect(url_for("legacy_index"))


app = FastAPI()


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "from FastAPI", "legacy": "/legacy/"}


app.mount("/legacy", bridge.to_asgi(legacy))
