"""Input that was accepted and should not have been: negative amounts, codes that are no currency, a
customer id no URL can carry, a viewer as owner, and an alert handed to another company's member."""

import pytest

from engagement.models import Customer, Engagement, Purchase
from metrics.alerts import stalled_scan
from metrics.models import Alert
from tenants.models import Member
from tenants.scoping import tenant_scope
from tenants.services import member_add
from tests.api.conftest import count, error_of


def _purchase(**changes):
    return {"external_id": "P-9", "customer": {"external_id": "C-9", "name": "Nine"}, "offering": "software",
            "purchased_at": "2026-01-05T09:00:00Z", **changes}  # fmt: skip


@pytest.mark.parametrize("amount", ["-0.01", -5, "-1200.00"])
def test_a_negative_amount_is_refused_by_name(api, acme, software, amount):
    error = error_of(api.post("purchases/", _purchase(amount=amount, currency="EUR")), 400, "invalid")
    assert "is negative" in error["fields"]["amount"][0]
    assert count(acme, Purchase) == 0


@pytest.mark.parametrize("currency", ["ABC", "XAU", "XXX", "EUX", "E1R"])
def test_a_code_that_is_no_currency_is_refused(api, acme, software, currency):
    error = error_of(api.post("purchases/", _purchase(amount="10.00", currency=currency)), 400, "invalid")
    assert "is not a currency's ISO 4217 code" in error["fields"]["currency"][0], error
    assert count(acme, Purchase) == 0


@pytest.mark.parametrize(("currency", "stored"), [("eur", "EUR"), ("JPY", "JPY"), ("XOF", "XOF")])
def test_real_currencies_and_a_zero_amount_are_accepted(api, acme, software, currency, stored):
    response = api.post("purchases/", _purchase(amount="0", currency=currency))
    assert response.status_code == 201, response.content
    with tenant_scope(acme):
        assert Purchase.objects.get().currency == stored


def test_a_customer_id_with_a_slash_is_refused_because_no_url_could_fetch_it(api, acme, software):
    error = error_of(api.post("customers/", {"external_id": "crm/42", "name": "Slash"}), 400, "invalid")
    assert "contains '/'" in error["fields"]["external_id"][0]
    nested = _purchase(customer={"external_id": "crm/42", "name": "Slash"})
    assert "customer.external_id" in error_of(api.post("purchases/", nested), 400)["fields"]
    assert count(acme, Customer) == 0
    # Anything else a CRM uses can be fetched back.
    assert api.post("customers/", {"external_id": "crm:42 a.b", "name": "Colon"}).status_code == 201
    assert api.get("customers/crm:42 a.b/").json()["name"] == "Colon"


@pytest.fixture
def viewer(acme):
    return member_add(tenant=acme, email="viewer@acme.test", role="viewer")[0]


def test_a_viewer_can_neither_own_nor_sell(api, acme, software, acme_purchase, viewer, members):
    for field in ("owner", "sales_rep"):
        error = error_of(api.post("purchases/", _purchase(**{field: "viewer@acme.test"})), 400)
        assert "viewer@acme.test is a viewer" in error["fields"][field][0]
        path = f"engagements/{acme_purchase.engagement.id}/"
        assert field in error_of(api.patch(path, {field: "viewer@acme.test"}), 400)["fields"]
    with tenant_scope(acme):
        assert count(acme, Purchase) == 1
        engagement = Engagement.objects.get()
    assert engagement.owner_id is None and engagement.sales_rep_id is None
    assert api.patch(path, {"owner": "owner@acme.test"}).status_code == 200


def test_a_batch_gives_a_viewer_nothing_either(api, acme, software, viewer):
    response = api.post("batch/", {"items": [{"kind": "purchase", "data": _purchase(owner="viewer@acme.test")}]})
    assert "viewer@acme.test is a viewer" in response.content.decode(), response.content[:500]
    assert count(acme, Purchase) == 0


def test_a_deactivated_member_takes_nothing_on(api, acme, software, members):
    with tenant_scope(acme):
        Member.objects.filter(pk=members["owner@acme.test"].pk).update(is_active=False)
    error = error_of(api.post("purchases/", _purchase(owner="owner@acme.test")), 400)
    assert "owner" in error["fields"]


def test_an_alert_is_not_assigned_to_a_viewer(api, acme, software, acme_purchase, viewer):
    with tenant_scope(acme):
        stalled_scan(acme)
        alert = Alert.objects.get()
    error = error_of(api.post(f"alerts/{alert.id}/acknowledge/", {"assignee": "viewer@acme.test"}), 400)
    assert "viewer@acme.test is a viewer" in error["fields"]["assignee"][0]
    with tenant_scope(acme):
        assert Alert.objects.get().assignee_id is None
