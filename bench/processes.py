"""Child processes the project starts itself (the benchmark's gunicorn, the load run's worker and locust,
the tests' Celery worker).

A process stopped by SIGTERM must not leave a child behind. A child started with `start_process` is
recorded before SIGTERM may interrupt again: the signal is held back while the child is created and
recorded, so there is no moment where the child runs and nobody knows it. `stop_started` then stops
whatever is still running, in the reverse order it started.
"""

import signal
import subprocess
import threading
from contextlib import contextmanager

_started = []


def start_process(cmd, **popen_kwargs):
    with sigterm_held_back():
        proc = subprocess.Popen(cmd, **popen_kwargs)  # noqa: S603 - callers pass our own interpreter and arguments
        _started.append(proc)
    return proc


def stop_started():
    """Stop every child `start_process` started that still runs, the newest first."""
    while _started:
        stop_process(_started.pop())


def stop_process(proc, timeout=20):
    """SIGTERM, so the process shuts down cleanly (a worker finishes its task); killed after `timeout` s."""
    if proc in _started:
        _started.remove(proc)
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def sigterm_held_back():
    """SIGTERM arriving inside the block is handled when the block ends (only the main thread has handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    handler = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)
        if received and callable(handler):
            handler(signal.SIGTERM, received[0])
        elif received and handler == signal.SIG_DFL:
            signal.raise_signal(signal.SIGTERM)
