"""Garbage-collector settings for the long-running processes: gunicorn's workers and Celery's.

Python's cyclic collector runs after every 700 new container objects, and now and then a full
collection walks every object the process holds. A Django process holds a few hundred thousand
objects from start-up (modules, models, URL patterns) that live until it exits, while one batch
call allocates hundreds of thousands of short-lived ones: full collections over the start-up
objects took about a fifth of the time of a 1,000-event batch call.

`tune` imports what requests will need (the URL patterns and the views behind them), moves every
object alive then into the permanent generation (`gc.freeze`: never walked again), and collects
less often. Garbage cycles are still collected.
"""

import gc

# Allocations between young collections (Python's default: 700), and how many collections of one
# generation run one of the next (default: 10 and 10).
THRESHOLDS = (50_000, 20, 20)


def tune():
    """Once the process has loaded the project, before it serves requests or runs tasks."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the URL modules and views before the freeze
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
