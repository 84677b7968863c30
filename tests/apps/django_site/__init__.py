"""A small real Django project: startproject's settings and middleware, SQLite, one model."""
