"""Django's own ASGI application, for comparison with ``to_asgi(wsgi.application)``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")
application = get_asgi_application()

from .database import prepare  # noqa: E402  (Django must be set up first)

prepare()
