"""The migration walk-through, before: the whole shop is a Flask app."""

from flask import Flask, redirect, request, url_for

app = Flask(__name__)

PRODUCTS = {1: "book", 2: "lamp"}


@app.get("/")
def index() -> dict[str, str]:
    return {"shop": "legacy Flask", "products": url_for("products")}


@app.get("/products")
def products() -> dict[str, object]:
    return {"products": PRODUCTS, "served_by": "flask"}


@app.route("/cart", methods=["GET", "POST"])
def cart() -> dict[str, object]:
    added = request.get_json(silent=True) or {}
    return {"cart": added, "served_by": "flask"}


@app.get("/login")
def login():  # type: ignore[no-untyped-def]
    response = redirect(url_for("cart"))
    response.set_cookie("session", "legacy")
    return response
