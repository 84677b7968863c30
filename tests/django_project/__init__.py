"""A small real Django project (settings, an app with a model, the default middleware) for tests.

Run in a subprocess of its own (``DJANGO_SETTINGS_MODULE`` points here), so
its settings never meet the in-process ones of ``tests/django_setup.py``.
"""
