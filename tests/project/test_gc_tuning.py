"""The collector settings of the long-running processes (pov.gc_tuning), each checked in a fresh
interpreter: freezing is for the whole process."""

import pytest

from pov.gc_tuning import THRESHOLDS
from tests.project.test_project import _start_up

REPORT = "import gc, sys; print(gc.get_threshold(), gc.get_freeze_count() > 0, 'pov.urls' in sys.modules)"
UNTUNED = "(700, 10, 10) False False"
TUNED = f"{THRESHOLDS} True True"


def _report(code):
    result = _start_up(f"{REPORT}; {code}; {REPORT}")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_web_worker_freezes_its_start_up_objects_with_the_url_patterns_loaded():
    assert _report("import pov.wsgi") == [UNTUNED, TUNED]


@pytest.mark.parametrize("signal", ["worker_process_init", "worker_ready"])
def test_a_celery_worker_process_is_tuned_when_it_starts(signal):
    code = f"from pov.celery import app; from celery import signals; signals.{signal}.send(sender=None)"
    assert _report(code) == [UNTUNED, TUNED]
