"""`manage.py bench` (README, Benchmark): a tiny run against the test database writes a record with every
key for every scenario and leaves no scratch tenant behind; without PostgreSQL it stops with a clear
message. Timings are not asserted here: limits belong to `make bench` itself (DESIGN.md)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from bench.report import REPORT_ORDER
from bench.scratch import SLUG, parse_scale
from tenants.models import Tenant, User

KEYS = {"scenario", "n", "seconds", "rate", "reference", "reference_rate", "ratio", "p50_ms", "p95_ms", "queries"}
REFERENCES = {"ingest_batch": "copy", "import_csv": "copy", "recompute_metrics": "sql", "stall_scan": "sql",
              "recompute_projection": "sql"}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_tiny_run_reports_every_scenario(tmp_path):
    output = tmp_path / "latest.json"
    out, err = StringIO(), StringIO()
    call_command("bench", "--scale", "300", "--requests", "3", "--output", str(output), stdout=out, stderr=err)

    records = json.loads(output.read_text())
    assert [r["scenario"] for r in records] == list(REPORT_ORDER)
    for r in records:
        assert set(r) >= KEYS, r["scenario"]
        assert "error" not in r, r
        assert r["n"] > 0 and r["seconds"] > 0 and r["rate"] > 0, r
        assert r["reference"] == REFERENCES.get(r["scenario"]), r
        if r["reference"]:
            assert r["reference_rate"] > 0 and r["ratio"] == pytest.approx(r["reference_rate"] / r["rate"]), r
        else:
            assert r["reference_rate"] is None and r["ratio"] is None, r
    by_name = {r["scenario"]: r for r in records}
    for name in ("ingest_single", "page_overview", "page_engagements", "page_engagement_detail", "api_metrics_summary"):
        assert 0 < by_name[name]["p50_ms"] <= by_name[name]["p95_ms"], name
        assert by_name[name]["queries"] > 0, name
    assert by_name["recompute_metrics"]["n"] == 300
    text = out.getvalue()
    assert "PoV benchmark, SCALE=300" in text and "page_engagement_detail" in text
    # The scratch tenant and its users are gone.
    assert not Tenant.objects.filter(slug=SLUG).exists()
    assert not User.objects.filter(email__endswith="@bench.pov.invalid").exists()


@pytest.mark.parametrize(
    ("text", "engagements"), [("100k", 100_000), ("1m", 1_000_000), ("10K", 10_000), ("300", 300), ("2.5k", 2_500)]
)
def test_scale(text, engagements):
    assert parse_scale(text) == engagements


@pytest.mark.parametrize("text", ["", "big", "10g", "-5", "10"])
def test_a_bad_scale_is_refused(text):
    with pytest.raises(ValueError, match="SCALE"):
        parse_scale(text)
