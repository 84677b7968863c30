"""Tables and a few rows, made once per database file."""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection


def prepare() -> None:
    """Create the tables (``migrate --run-syncdb``) and ten items, unless already there."""
    from .models import Item

    if "django_site_item" not in connection.introspection.table_names():
        call_command("migrate", run_syncdb=True, verbosity=0)
    if not Item.objects.exists():
        Item.objects.bulk_create(Item(name=f"item {n}", price=n * 100) for n in range(10))
    connection.close()
