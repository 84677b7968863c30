"""The migration walk-through, step 1: /products moved to FastAPI, the rest still Flask."""

from fastapi import FastAPI, HTTPException

import bridge
from docs.examples import legacy_shop

api = FastAPI(title="shop")


@api.get("/products")
async def products() -> dict[str, object]:
    return {"products": legacy_shop.PRODUCTS, "served_by": "fastapi"}


@api.get("/products/{number}")
async def product(number: int) -> dict[str, object]:
    if number not in legacy_shop.PRODUCTS:
        raise HTTPException(404, "no such product")  # FastAPI's own 404: it stands
    return {"product": legacy_shop.PRODUCTS[number], "served_by": "fastapi"}


# Every route FastAPI has no route for goes to the legacy app, unchanged.
app = bridge.fallback(api, legacy_shop.app, log_fallthrough=True)
