"""The table `make load` prints: rate and latency per kind of request, the write check, the verdict."""

from loadtest.verdict import WRITE_TABLES


def _ms(value):
    return "-" if value is None else f"{value:.0f}"


def _statuses(stats):
    return " ".join(f"{status}×{count}" for status, count in stats["statuses"].items())


def render(report, out):
    out.write(
        f"\nPoV load test: {report['users']} users for {report['planned_seconds']} s against gunicorn "
        f"({report['gunicorn_workers']} workers) and a Celery worker\n\n"
    )
    out.write(f"{'kind':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}  statuses\n")
    for kind, stats in report["kinds"].items():
        out.write(
            f"{kind:<22}{stats['requests']:>9}{stats['rate']:>9.1f}{_ms(stats['p50_ms']):>9}"
            f"{_ms(stats['p95_ms']):>9}  {_statuses(stats)}\n"
        )
    out.write(
        f"{'all':<22}{report['requests']:>9}{report['rate'] or 0:>9.1f}{_ms(report['p50_ms']):>9}"
        f"{_ms(report['p95_ms']):>9}  over {report['seconds']} s\n\n"
    )
    out.write(f"{'writes':<22}{'2xx':>9}{'stored':>9}{'new rows':>9}\n")
    for table in WRITE_TABLES:
        row = report["writes"][table]
        out.write(f"{table:<22}{row['acknowledged']:>9}{row['stored']:>9}{row['rows_added']:>9}\n")
    if report["ok"]:
        out.write("\nPASSED: no 5xx, no connection error, every acknowledged write stored once and nothing else.\n")
    else:
        out.write("\nFAILED:\n" + "".join(f"  - {problem}\n" for problem in report["problems"]))
