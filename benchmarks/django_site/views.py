from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from .models import Item


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!", content_type="text/plain")


def items(request: HttpRequest) -> JsonResponse:
    """Two queries, and the request's own query string and cookie in the answer."""
    listed = list(Item.objects.order_by("id").values("name", "price")[:10])
    return JsonResponse(
        {
            "count": Item.objects.count(),
            "items": listed,
            "query": request.GET.urlencode(),
            "user": request.COOKIES.get("user", "guest"),
        }
    )
