"""One model, so that the ORM has a table to read and write."""

from __future__ import annotations

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=100)
