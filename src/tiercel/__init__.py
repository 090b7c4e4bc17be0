"""Tiercel: a meta-scheduler for many-task computing."""

__version__ = "0.1.0"
