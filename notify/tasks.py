"""Celery tasks of notify (Celery finds this module). Each feature keeps its thin tasks beside its
services; they are imported here so the worker registers them."""
