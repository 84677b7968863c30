"""await_ under Django's own ASGI handler, and Django's async-safety guard under greenlets."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test.utils import override_settings
from django.urls import path

import bridge
from tests.django_setup import configure_django
from tests.harness import FakeServer, make_scope

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Django's ASGI handler and asgiref are asyncio-only


async def _where() -> int:
    await asyncio.sleep(0)
    return threading.get_ident()


def await_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(bridge.await_(_where())))


def _query() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        return int(cursor.fetchone()[0])


def orm_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(_query()))


def orm_through_a_thread_view(request: HttpRequest) -> HttpResponse:
    # The documented way to reach the ORM from a greenlet: hand it to a thread.
    return HttpResponse(str(bridge.await_(bridge.sync_to_async(_query)())))


urlpatterns = [
    path("await/", await_view),
    path("orm/", orm_view),
    path("orm-thread/", orm_through_a_thread_view),
]


@pytest.fixture(autouse=True)
def django_settings() -> Any:
    configure_django()
    with override_settings(ROOT_URLCONF=__name__):
        yield


async def test_await_in_a_sync_view_under_djangos_asgi_handler_uses_the_servers_loop() -> None:
    from django.core.asgi import get_asgi_application

    exchange = await FakeServer(get_asgi_application()).request(make_scope("/await/"))
    assert exchange.status == 200
    assert int(exchange.body) == threading.get_ident()


async def test_the_orm_works_under_the_thread_executor() -> None:
    from django.core.wsgi import get_wsgi_application

    app = bridge.to_asgi(get_wsgi_application(), executor="thread")
    assert (await FakeServer(app).request(make_scope("/orm/"))).body == b"42"


async def test_the_orm_refuses_greenlets_and_works_through_a_thread() -> None:
    from django.core.exceptions import SynchronousOnlyOperation
    from django.core.wsgi import get_wsgi_application

    app = bridge.to_asgi(get_wsgi_application(), executor="greenlet")
    with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True):
        refused = await FakeServer(app).request(make_scope("/orm/"))
    assert refused.status == 500
    assert isinstance(refused.error, SynchronousOnlyOperation)  # raised on to the server
    assert (await FakeServer(app).request(make_scope("/orm-thread/"))).body == b"42"
