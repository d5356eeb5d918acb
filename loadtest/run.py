"""`make load` (`python -m loadtest.run`): a bounded load test against the production shape.

A database of its own (pov_load_<pid>) is created, migrated and finally dropped, so the run never
touches another database. Migrations run as the owner (DATABASE_OWNER_URL, default DATABASE_URL),
the server and worker connect as the application (DATABASE_URL). Then gunicorn (2 workers, DEBUG off)
and a real Celery worker start, locust drives the mixed traffic of loadtest/locustfile.py for the
given time, and the run checks: no 5xx, no connection error, and the rows in the database equal
the writes answered 2xx. It prints rates and p50/p95 and writes var/load/latest.json. Every process
it started is stopped and the database dropped whatever happens, also on SIGTERM.
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from bench.processes import stop_started

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "load"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql"}
NOT_POSTGRES = (
    "make load needs PostgreSQL: DATABASE_URL must be a postgres:// URL (or unset, for the embedded one); "
    "it creates and drops a database of its own."
)
MAINTENANCE_DB = "postgres"


class Databases:
    """The run's database name and its two URLs: the owner's (create, migrate, drop) and the app's."""

    def __init__(self, owner_url, app_url, name):
        self.owner_url, self.app_url, self.name = owner_url, app_url, name

    @classmethod
    def from_env(cls, pid):
        app, owner = os.environ.get("DATABASE_URL", ""), os.environ.get("DATABASE_OWNER_URL", "")
        if not app:  # the embedded PostgreSQL under var/ (make load starts it)
            from pov import localdb

            app, owner = localdb.default().app_url, localdb.default().owner_url
        owner = owner or app
        if not all(urlparse(url).scheme in POSTGRES_SCHEMES for url in (app, owner)):
            raise SystemExit(NOT_POSTGRES)
        return cls(owner, app, f"pov_load_{pid}")

    @staticmethod
    def on(url, name):
        parsed = urlparse(url)
        return parsed._replace(scheme="postgresql", path=f"/{name}").geturl()

    @property
    def owner(self):
        return self.on(self.owner_url, self.name)

    @property
    def app(self):
        return self.on(self.app_url, self.name)

    def _maintenance(self, statement):
        import psycopg

        with psycopg.connect(self.on(self.owner_url, MAINTENANCE_DB), autocommit=True) as conn:
            conn.execute(statement)

    def create(self):
        self.drop()  # what a killed run with the same pid left
        self._maintenance(f'CREATE DATABASE "{self.name}"')

    def drop(self):
        # FORCE: a connection a killed child left open must not keep the database alive.
        self._maintenance(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def say(text):
    print(text, file=sys.stderr, flush=True)


def migrate(databases):
    """`migrate` switches to the owner's login itself (tenants/rls.py) and grants the app's role its rights."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pov.settings", "DATABASE_URL": databases.app,
           "DATABASE_OWNER_URL": databases.owner}  # fmt: skip
    cmd = [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)  # noqa: S603 - our own interpreter and arguments


def setup_django(databases, queue):
    """This process reads and writes the run's database as the app, and enqueues on the run's queue."""
    os.environ.update(DJANGO_SETTINGS_MODULE="pov.settings", DATABASE_URL=databases.app,
                      DATABASE_OWNER_URL=databases.owner, CELERY_QUEUE=queue)  # fmt: skip
    import django

    django.setup()


def _stop_on_sigterm(signum, frame):
    # One signal starts the stop; another must not cut the clean-up short (the caller may still SIGKILL).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(f"stopped by signal {signum}")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="make load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="How long locust runs (default 60).")
    parser.add_argument("--users", type=int, default=20, help="Simulated users (default 20).")
    parser.add_argument("--output", type=Path, default=VAR / "latest.json", help="Where to write the JSON report.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    databases = Databases.from_env(os.getpid())
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    VAR.mkdir(parents=True, exist_ok=True)
    queue = f"pov-load-{os.getpid()}"
    say(f"Creating the database {databases.name} and migrating it …")
    databases.create()
    django_ready = False
    try:
        migrate(databases)
        setup_django(databases, queue)
        django_ready = True
        from loadtest.session import LoadSession

        report = LoadSession(args.seconds, args.users, run=f"L{secrets.token_hex(4)}").run()
    finally:
        stop_started()  # when the stop came before the session's own clean-up could run
        if django_ready:  # our own connections would block the drop for a moment
            from django.db import connections

            connections.close_all()
        say(f"Dropping the database {databases.name} …")
        databases.drop()
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    from loadtest.report import render

    render(report, sys.stdout)
    print(f"Written to {args.output}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
