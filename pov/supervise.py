"""Keeps a long-running process running: `python -m pov.supervise celery -A pov worker ...` (Procfile).

A Celery worker can exit on a broker hiccup (kombu's Redis transport has ended a reconnecting worker with
"Unrecoverable error: AttributeError"), and under `make run` one exiting process stops web, worker and beat
together. This starts the command again whenever it exits without being asked to: after 1 s, doubling up to
30 s while it keeps failing. SIGINT and SIGTERM are passed on to it, and once it has stopped this exits
with its code. A command that exits within STARTUP_SECONDS five times in a row is broken, not unlucky
(a wrong setting, a refused database role): this then gives up with its code, so the failure is seen.
(docker-compose.yml restarts its containers itself: `restart: unless-stopped`.)
"""

import signal
import subprocess
import sys
import threading
import time

STARTUP_SECONDS = 10
QUICK_EXITS = 5
MAX_DELAY = 30


def supervise(cmd: list[str]) -> int:
    stopping = threading.Event()
    child: subprocess.Popen | None = None

    def pass_on(signum, frame):
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    delay, quick_exits = 1, 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(cmd)  # noqa: S603 - the Procfile's own command
        code = child.wait()
        if stopping.is_set():
            return code
        quick_exits = quick_exits + 1 if time.monotonic() - started < STARTUP_SECONDS else 0
        if quick_exits >= QUICK_EXITS:
            _say(f"{cmd[0]} exited with {code} {QUICK_EXITS} times within {STARTUP_SECONDS} s of starting; giving up")
            return code or 1
        if quick_exits == 0:
            delay = 1
        _say(f"{cmd[0]} exited with {code}; starting it again in {delay} s")
        if stopping.wait(delay):
            return code
        delay = min(delay * 2, MAX_DELAY)


def _say(message: str) -> None:
    print(f"supervise: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m pov.supervise COMMAND [ARGS...]")
    sys.exit(supervise(sys.argv[1:]))
