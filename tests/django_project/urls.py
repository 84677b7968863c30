"""A sync view that awaits Django's async APIs through ``bridge.await_``."""

from __future__ import annotations

import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.urls import path

import bridge

from .notes.models import Note


async def _async_apis(request: HttpRequest, token: str) -> dict[str, Any]:
    # Each of these makes a thread-sensitive call underneath.
    await Note.objects.acreate(text=token)
    count = await Note.objects.filter(text=token).acount()
    user = await request.auser()  # type: ignore[attr-defined]
    await cache.aset(token, token)
    return {
        "count": count,
        "anonymous": user.is_anonymous,
        "cached": await cache.aget(token),
        "asgiref": await sync_to_async(threading.get_ident)(),
        "bridge": await bridge.sync_to_async(threading.get_ident, thread_sensitive=True)(),
    }


def await_view(request: HttpRequest) -> JsonResponse:
    token = request.GET["token"]
    answer = bridge.await_(_async_apis(request, token))
    answer["view"] = threading.get_ident()
    return JsonResponse(answer)


urlpatterns = [path("await/", await_view)]
