"""`make bench`: the production settings with the benchmark's management command installed."""

from pov.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405
