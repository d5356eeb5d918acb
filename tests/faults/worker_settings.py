"""Settings for the workers of the kill test: a message a dead worker left unacknowledged goes back to
the queue after 4 s instead of an hour, and a new worker looks for such messages every second."""

from pov.settings_test import *  # noqa: F403

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "visibility_timeout": 4,
    "unacked_restore_interval": 1,
}
