"""A Flask app as an AWS Lambda function; its handler setting is ``flask_handler.handler``."""

import logging

from flask import Flask, redirect, request, url_for

import bridge

logging.getLogger().setLevel(logging.INFO)  # bridge logs app errors and oversize replies
app = Flask(__name__)


@app.get("/")
def index() -> dict[str, str]:
    return {"hello": "from Flask on Lambda", "you_asked_for": request.url}


@app.get("/home")
def home():  # type: ignore[no-untyped-def]
    return redirect(url_for("index"))  # keeps the stage: /prod/ on API Gateway's own host


@app.get("/whoami")
def whoami() -> dict[str, object]:
    context = request.environ["aws.context"]  # the Lambda context object
    return {"request_id": context.aws_request_id, "client": request.remote_addr}


handler = bridge.aws_lambda(app)
