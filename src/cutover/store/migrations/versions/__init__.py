"""Numbered migrations of the store: ``0001_initial.py``, ``0002_...``."""
