from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from bench.run import SCENARIOS, Run
from bench.scratch import parse_scale


def _stream(wrapper):
    """The stream under Django's OutputWrapper, which would end every progress-bar redraw with a newline."""
    return getattr(wrapper, "_out", wrapper)


class Command(BaseCommand):
    help = (
        "The benchmark (README, Benchmark): a scratch tenant with generated data at --scale, every scenario against "
        "its reference, a table and var/bench/latest.json. Needs PostgreSQL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--scale", default="100k", help="Engagements: 100k (default), 1m, or a number.")
        parser.add_argument("--requests", type=int, default=50, help="Timed requests per page scenario.")
        parser.add_argument("--output", type=Path, help="Where to write the JSON (default: var/bench/latest.json).")
        parser.add_argument(
            "--keep", action="store_true", help="Keep the scratch tenant for profiling (the next run removes it)."
        )
        parser.add_argument(
            "--only", action="append", choices=[name for name, _ in SCENARIOS], help="Run only this scenario."
        )

    def handle(self, scale, requests, only, output, keep, **options):
        try:
            engagements = parse_scale(scale)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        call_command("migrate", interactive=False, verbosity=0)
        run = Run(
            engagements, label=scale, requests=requests, out=_stream(self.stdout), err=_stream(self.stderr),
            only=only, output=output, keep=keep,
        )  # fmt: skip
        debug = settings.DEBUG
        # Measured as production runs: no query log in this process (a local .env may turn DEBUG on).
        settings.DEBUG = False
        try:
            outcome = run()
        finally:
            settings.DEBUG = debug
        if outcome.errors:
            names = ", ".join(r["scenario"] for r in outcome.errors)
            raise CommandError(f"{len(outcome.errors)} scenario(s) failed: {names}")
