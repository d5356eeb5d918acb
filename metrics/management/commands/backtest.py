import json
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from metrics import backtest
from metrics.rollups import local_day
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _day(value):
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of must be a day written YYYY-MM-DD, not {value!r}.") from None


class Command(BaseCommand):
    help = (
        "Forecast every engagement open at the end of a past day from what was known then, score the forecasts "
        "against what happened since, print the calibration table, Brier score and AUC, and save them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", required=True, type=_day, help="The past day, YYYY-MM-DD.")
        parser.add_argument("--tenant", help="Slug of one tenant (default: all).")

    def handle(self, as_of, tenant=None, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        now = timezone.now()
        for each in tenants:
            if as_of >= local_day(each, now):
                raise CommandError(
                    f"--as-of must be a day before today ({local_day(each, now)}) to have happened since."
                )
            with tenant_scope(each):
                result = backtest.run(each, as_of, now)
                backtest.save(each, result)
            path = self._write(each, result)
            self._print(each, result, path)

    def _write(self, tenant, result):
        folder = settings.VAR_DIR / "backtest"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{tenant.slug}-{result.as_of}.json"
        path.write_text(json.dumps(result.as_json(), indent=2) + "\n")
        return path

    def _print(self, tenant, result, path):
        write = self.stdout.write
        write(
            f"{tenant.slug}: as of {result.as_of}, {result.forecast} open engagements forecast, "
            f"{result.scored} with a known outcome."
        )
        if not result.scored:
            write("  Nothing to score yet: no engagement open then has reached its target day or an outcome since.")
        write(f"  {'forecast':<12}{'customers':>10}{'forecast avg':>14}{'came true':>11}")
        for row in result.calibration:
            predicted = "–" if row["predicted"] is None else f"{row['predicted']:.0%}"
            observed = "–" if row["observed"] is None else f"{row['observed']:.0%}"
            write(f"  {row['label']:<12}{row['count']:>10}{predicted:>14}{observed:>11}")
        brier = "–" if result.brier is None else f"{result.brier:.3f}"
        auc = "–" if result.auc is None else f"{result.auc:.3f}"
        write(f"  Brier score {brier} (0 is perfect, 0.25 a coin toss); AUC {auc} (1 ranks perfectly, 0.5 is chance).")
        write(f"  Saved to {path}")
