"""Django configured once per test process, the same way for every module that needs it."""

from __future__ import annotations

import django
from django.conf import settings


def configure_django() -> None:
    """Settings for all Django tests; modules pick their URLs with override_settings."""
    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=[],
            SECRET_KEY="tests-not-secret",
            DEBUG=False,
            USE_TZ=True,
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=[],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
        django.setup()
