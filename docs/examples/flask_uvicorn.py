"""Quickstart: a Flask app served by uvicorn through bridge.to_asgi."""

from flask import Flask, request

import bridge

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> dict[str, str]:
    return {"hello": "from Flask", "path": request.path}


app = bridge.to_asgi(flask_app)  # uvicorn docs.examples.flask_uvicorn:app
