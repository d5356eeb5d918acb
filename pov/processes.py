"""Child processes the project starts itself (the benchmark's gunicorn, the tests' Celery worker)."""

import signal
import subprocess


def stop_process(proc, timeout=20):
    """SIGTERM, so the process shuts down cleanly (a worker finishes its task); killed after `timeout` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
