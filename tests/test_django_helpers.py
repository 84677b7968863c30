"""await_ under Django's own ASGI handler, and Django's async-safety guard under greenlets."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
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


async def _sensitive_calls() -> list[int]:
    # What Django's async APIs do underneath: asgiref's thread-sensitive calls,
    # here the async cache and a query; then one of bridge's own.
    from asgiref.sync import sync_to_async as asgiref_sync_to_async
    from django.core.cache import cache

    await cache.aset("key", 42)
    assert await cache.aget("key") == 42
    query = await asgiref_sync_to_async(lambda: (_query(), threading.get_ident())[1])()
    ours = await bridge.sync_to_async(threading.get_ident, thread_sensitive=True)()
    return [query, ours]


def sensitive_await_view(request: HttpRequest) -> HttpResponse:
    threads = bridge.await_(_sensitive_calls())
    return HttpResponse(" ".join(str(thread) for thread in [threading.get_ident(), *threads]))


urlpatterns = [
    path("sensitive-await/", sensitive_await_view),
    path("await/", await_view),
    path("orm/", orm_view),
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


async def test_await_in_a_sync_view_serves_djangos_thread_sensitive_calls() -> None:
    # The view's thread waits in await_(); asgiref sends the awaitable's
    # thread-sensitive calls to that very thread. It used to wait without
    # serving them: the request never answered.
    import httpx
    from django.core.asgi import get_asgi_application

    transport = httpx.ASGITransport(app=get_asgi_application())
    async with httpx.AsyncClient(transport=transport, base_url="http://django") as client:
        with anyio.fail_after(20):
            answers = await asyncio.gather(*(client.get("/sensitive-await/") for _ in range(8)))
    views: set[int] = set()
    for answer in answers:
        assert answer.status_code == 200
        view, *calls = (int(part) for part in answer.text.split())
        assert calls == [view] * 2  # each call on its request's thread
        views.add(view)
    assert threading.get_ident() not in views


async def test_the_orm_works_under_the_thread_executor() -> None:
    from django.core.wsgi import get_wsgi_application

    app = bridge.to_asgi(get_wsgi_application(), executor="thread")
    assert (await FakeServer(app).request(make_scope("/orm/"))).body == b"42"


class _Middleware:
    """WSGI middleware that keeps the app it wraps as an attribute, as most do."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


def _hidden(app: Any) -> Any:
    """WSGI middleware that hides the app it wraps in a closure."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        return app(environ, start_response)

    return middleware


@pytest.mark.parametrize(
    "wrap", [lambda app: app, _Middleware, lambda app: _Middleware(app).__call__]
)
@pytest.mark.parametrize("executor", ["greenlet", bridge.GreenletExecutor()])
def test_a_django_app_under_the_greenlet_executor_is_refused(wrap: Any, executor: Any) -> None:
    # It used to be served: ORM calls failed, and the documented workaround
    # (queries in worker threads) leaked connections and transactions past
    # Django's end-of-request clean-up.
    from django.core.wsgi import get_wsgi_application

    with pytest.raises(bridge.ConfigurationError, match="executor='thread'"):
        bridge.to_asgi(wrap(get_wsgi_application()), executor=executor)


async def test_a_hidden_django_app_under_greenlets_fails_its_first_request_before_any_view() -> (
    None
):
    from django.core.wsgi import get_wsgi_application

    ran: list[str] = []

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        ran.append(environ["PATH_INFO"])
        return django_app(environ, start_response)

    django_app = get_wsgi_application()
    app = bridge.to_asgi(_hidden(counting), executor="greenlet")
    errors = []
    for _ in range(2):
        # A view that needs no database: only the refusal makes this a 500.
        refused = await FakeServer(app).request(make_scope("/await/"))
        assert refused.status == 500
        errors.append(refused.error)  # raised on to the server, which logs it
    assert ran == ["/await/", "/await/"]
    assert errors and all(isinstance(error, bridge.ConfigurationError) for error in errors)
    assert "executor='thread'" in str(errors[0])
    # The same Django app under the thread executor is not refused.
    served = await FakeServer(bridge.to_asgi(_hidden(django_app))).request(make_scope("/orm/"))
    assert served.body == b"42"
