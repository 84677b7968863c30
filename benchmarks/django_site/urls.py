from __future__ import annotations

from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("", views.hello),
    path("items", views.items),
    path("admin/", admin.site.urls),
]
