"""A small real Django project: startproject's settings and middleware, SQLite, one model.

The benchmarks serve it (``benchmarks/django_bench.py``) and ``bridge check``'s
tests check it. ``/`` is a hello view, ``/items`` runs two queries.
"""
