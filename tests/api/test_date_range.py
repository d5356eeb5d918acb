"""Dates PoV accepts: years 1970 to 2200, said so in the error. A purchase dated year 1 once made every
page of a company west of UTC answer 500, and a filter to 9999-12-31 overflowed adding its last day."""

import pytest

from engagement.models import Purchase
from tenants.services import member_add
from tests.api.conftest import count, error_of

ABSURD_INSTANTS = ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T08:00:00+08:00"]
ABSURD_DAYS = ["9999-12-31", "0001-01-01", "1969-12-31", "2201-01-01"]


@pytest.fixture
def west(acme):
    acme.time_zone = "America/Los_Angeles"
    acme.save(update_fields=["time_zone"])
    return acme


def _purchase(when, external_id="P-old"):
    return {"external_id": external_id, "customer": {"external_id": "C-9", "name": "Old"}, "offering": "software",
            "purchased_at": when}  # fmt: skip


@pytest.mark.parametrize("when", ABSURD_INSTANTS)
def test_a_purchase_before_1970_is_refused_by_name(api, west, software, when):
    error = error_of(api.post("purchases/", _purchase(when)), 400, "invalid")
    assert "before 1970" in error["fields"]["purchased_at"][0], error
    assert count(west, Purchase) == 0


@pytest.mark.parametrize("when", ABSURD_INSTANTS)
def test_a_batch_purchase_before_1970_is_refused_by_name(api, west, software, when):
    response = api.post("batch/", {"items": [{"kind": "purchase", "data": _purchase(when)}]})
    assert response.status_code in (200, 207, 400), response.content[:500]
    assert "before 1970" in response.content.decode()
    assert count(west, Purchase) == 0


def test_a_purchase_in_1970_is_accepted(api, west, software):
    assert api.post("purchases/", _purchase("1970-01-01T00:00:00Z")).status_code == 201


@pytest.mark.parametrize("day", ABSURD_DAYS)
@pytest.mark.parametrize("path", ["engagements/", "metrics/summary/", "metrics/cohorts/", "metrics/funnel/"])
def test_a_filter_date_outside_the_years_is_a_400_naming_it(api, west, acme_purchase, path, day):
    offering = {"offering": "software"} if path == "metrics/funnel/" else {}
    for name in ("purchased_from", "purchased_to"):
        error = error_of(api.get(path, {name: day, **offering}), 400)
        assert error["fields"][name] == [f"{day} is not between the years 1970 and 2200."], error


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
@pytest.mark.parametrize("page", ["", "engagements/", "engagements/export.csv"])
def test_pages_answer_a_filter_date_outside_the_years_without_a_500(west, acme_purchase, login, page, day):
    client = login(member_add(tenant=west, email="owner@acme.test", role="owner")[0])
    response = client.get(f"/t/{west.slug}/{page}", {"purchased_to": day})
    assert response.status_code in (200, 400), response.status_code
    assert "not between the years 1970 and 2200" in response.content.decode()


def test_filters_at_the_edges_of_the_years_work(api, west, acme_purchase):
    response = api.get("engagements/", {"purchased_from": "1970-01-01", "purchased_to": "2200-12-31"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
