"""The WSGI application, as startproject writes it, on a database made ready first."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")
application = get_wsgi_application()

from .database import prepare  # noqa: E402  (Django must be set up first)

prepare()
