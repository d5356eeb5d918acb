"""bench/processes.py: a child started while SIGTERM arrives is still known and stopped, never left behind."""

import os
import signal
import sys
import time

from bench.processes import sigterm_held_back, start_process, stop_started

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_sigterm_inside_the_block_is_handled_when_the_block_ends():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("handled"))
    try:
        with sigterm_held_back():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the signal has been delivered; its handler must wait
            seen.append("block finished")
        assert seen == ["block finished", "handled"]
        assert signal.getsignal(signal.SIGTERM) is not None and seen.count("handled") == 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_a_signal_the_block_changes_nothing():
    previous = signal.getsignal(signal.SIGTERM)
    with sigterm_held_back():
        pass
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_child_whose_start_the_stop_interrupts_is_still_stopped(monkeypatch):
    """SIGTERM lands after the fork, before Popen returns: without holding it back, nobody would know the child."""
    import subprocess

    class Stopped(Exception):
        pass

    def stop(signum, frame):
        raise Stopped

    created = []
    real_popen = subprocess.Popen

    def popen_interrupted_on_return(*args, **kwargs):
        created.append(real_popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # delivered here, inside Popen, as on a busy machine
        return created[-1]

    monkeypatch.setattr(subprocess, "Popen", popen_interrupted_on_return)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        try:
            start_process(SLEEPER)
        except Stopped:
            pass
        else:
            raise AssertionError("the stop was handled")
        stop_started()
        assert created and created[0].poll() is not None, "the child outlived stop_started"
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in created:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
