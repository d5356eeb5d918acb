"""pov.supervise, which keeps `make run`'s worker and beat running (the broker restart itself is in
tests/faults): it starts an exiting command again, passes a stop on, and gives up on a broken command."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, wait_for

# The module's own loop with fewer quick exits, so giving up takes seconds (1 s, then 2 s between starts).
RUN = "import sys, pov.supervise as s; s.QUICK_EXITS = 3; sys.exit(s.supervise(sys.argv[1:]))"


def _supervise(*cmd):
    return subprocess.Popen(
        [sys.executable, "-c", RUN, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_a_command_that_keeps_failing_at_start_up_is_given_up_with_its_code():
    supervisor = _supervise(sys.executable, "-c", "print('started', flush=True); raise SystemExit(3)")
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 3
    assert output.count("started") == 3
    assert "exited with 3; starting it again in 1 s" in output
    assert "exited with 3; starting it again in 2 s" in output
    assert "giving up" in output


def test_a_stop_is_passed_on_and_nothing_is_started_again(tmp_path):
    marker = tmp_path / "pid"
    child = (
        "import os, pathlib, signal, sys, time\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "time.sleep(60)\n"
    )
    supervisor = _supervise(sys.executable, "-c", child)
    wait_for(lambda: marker.exists() and marker.read_text(), timeout=10, interval=0.05)
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=10)
    assert supervisor.returncode == 0, output
    assert "starting it again" not in output
    time.sleep(0.2)
    assert not _alive(int(marker.read_text()))


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
