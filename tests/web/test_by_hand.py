"""A purchase added and a customer edited by hand: the API's rules and records, readable refusals."""

import html

import pytest

from engagement.models import Customer, Engagement, OutboxMessage, Purchase
from tenants.models import AuditEntry
from tenants.scoping import tenant_scope
from tests.web.test_pages import text

NEW = "engagements/new/"


def _purchase(**changes):
    body = {
        "customer_id": "C-hand", "customer_name": "Hand Made GmbH", "customer_email": "ops@handmade.example",
        "customer_segment": "smb", "external_id": "P-hand", "offering": "acme-software",
        "purchased_at": "2026-12-01T09:30", "amount": "1200.50", "currency": "eur", "owner": "owner@acme.test",
        "sales_rep": "sales@acme.test", "success_criteria": "Invoices out in one day\r\nTeam trained\r\n",
    }  # fmt: skip
    return {**body, **changes}


def test_a_purchase_added_by_hand_opens_the_engagement_as_the_api_would(acme, login):
    client = login(acme.members["sales"])
    response = client.post(acme.path(NEW), _purchase())

    with tenant_scope(acme.tenant):
        purchase = Purchase.objects.select_related("customer", "engagement__owner__user").get(external_id="P-hand")
        engagement = purchase.engagement
        assert response.status_code == 302
        assert response["Location"] == acme.path(f"engagements/{engagement.id}/")
        assert (purchase.customer.name, purchase.customer.email, purchase.customer.segment) == (
            "Hand Made GmbH", "ops@handmade.example", "smb"
        )  # fmt: skip
        assert (str(purchase.amount), purchase.currency) == ("1200.50", "EUR")
        # 09:30 in the company's zone (Europe/Berlin in December: UTC+1).
        assert purchase.purchased_at.isoformat() == "2026-12-01T08:30:00+00:00"
        assert engagement.owner.user.email == "owner@acme.test"
        assert purchase.success_criteria == ["Invoices out in one day", "Team trained"]
        created = AuditEntry.objects.get(action="engagement.created", target_id=str(engagement.id))
        assert created.actor_label == "sales@acme.test"
        assert OutboxMessage.objects.filter(kind="engagement.changed").exists()

    again = client.post(acme.path(NEW), _purchase(), follow=True)
    assert "That purchase was already recorded." in text(again)
    with tenant_scope(acme.tenant):
        assert Purchase.objects.filter(external_id="P-hand").count() == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": "-5"}, "Amount: "),
        ({"success_criteria": "ok\n" + "x" * 201}, "Criterion 2: Keep each criterion to 200 characters at most."),
        ({"currency": "XYZ"}, "Currency: "),
        ({"customer_id": "C/1"}, "Customer id: 'C/1' contains '/'"),
        ({"customer_email": "not-an-email"}, "Customer email: Enter a valid email address."),
        ({"customer_name": ""}, "Customer name: This field may not be blank."),
        ({"purchased_at": "0001-01-01T00:00"}, "Purchased: "),
        ({"purchased_at": "yesterday"}, "Purchased: 'yesterday' is not a date and time."),
        ({"owner": "viewer@acme.test"}, "Owner: "),
        ({"external_id": ""}, "Purchase id: This field may not be blank."),
    ],
)
def test_bad_input_is_refused_naming_the_field_as_labelled_and_keeps_what_was_typed(acme, login, changes, message):
    response = login(acme.members["owner"]).post(acme.path(NEW), _purchase(**changes))
    assert response.status_code == 400
    assert message in text(response), text(response)[:1500]
    assert 'value="Hand Made GmbH"' in response.content.decode() or "customer_name" in changes
    with tenant_scope(acme.tenant):
        assert not Purchase.objects.filter(external_id="P-hand").exists()
        assert not Customer.objects.filter(external_id="C-hand").exists()


def test_the_same_purchase_id_with_other_values_is_a_conflict_not_an_overwrite(acme, login):
    client = login(acme.members["owner"])
    client.post(acme.path(NEW), _purchase())
    response = client.post(acme.path(NEW), _purchase(amount="99"))
    assert response.status_code == 400
    assert "amount" in text(response)
    with tenant_scope(acme.tenant):
        assert str(Purchase.objects.get(external_id="P-hand").amount) == "1200.50"


def test_a_customer_is_edited_with_its_attributes(acme, login):
    path = acme.path(f"customers/{acme.engagement.customer_id}/")
    client = login(acme.members["service"])
    body = {"name": "Renamed AG", "email": "it@renamed.example", "segment": "enterprise",
            "attributes": "plan: premium\nseats: 12\nbeta: true"}  # fmt: skip
    response = client.post(path, body)
    assert response.status_code == 302
    with tenant_scope(acme.tenant):
        customer = Customer.objects.get(pk=acme.engagement.customer_id)
    assert (customer.name, customer.email, customer.segment) == ("Renamed AG", "it@renamed.example", "enterprise")
    assert customer.attributes == {"plan": "premium", "seats": 12, "beta": True}
    page = client.get(path).content.decode()
    # One line per attribute, in the order PostgreSQL keeps them (jsonb sorts the keys).
    assert ">beta: true\nplan: premium\nseats: 12</textarea>" in page
    assert f'href="{acme.path(f"engagements/{acme.engagement.id}/")}"' in page  # the customer's engagements


def test_attributes_set_by_the_api_are_kept_as_they_are_when_the_customer_is_saved_on_the_page(acme, login):
    stored = {"account": "123", "flag": "true", "padded": " x ", "lines": "a\nb", "seats": 12, "tags": ["a"]}
    with tenant_scope(acme.tenant):
        Customer.objects.filter(pk=acme.engagement.customer_id).update(attributes=stored)
    path = acme.path(f"customers/{acme.engagement.customer_id}/")
    client = login(acme.members["service"])
    page = client.get(path).content.decode()
    shown = page[page.index('name="attributes"') :].split(">", 1)[1].split("</textarea>")[0]
    assert "account: &quot;123&quot;" in shown and "seats: 12" in shown
    body = {"name": "Kept AG", "email": "", "segment": "", "attributes": html.unescape(shown)}
    assert client.post(path, body).status_code == 302
    with tenant_scope(acme.tenant):
        assert Customer.objects.get(pk=acme.engagement.customer_id).attributes == stored


@pytest.mark.parametrize(
    ("attributes", "message"),
    [("no colon here", "Attributes: Line 1 needs the form 'name: value'."),
     ("note: " + "x" * 10_001, "Attributes: Keep attributes under 10,000 characters.")],
)  # fmt: skip
def test_bad_attributes_are_refused_and_nothing_changes(acme, login, attributes, message):
    path = acme.path(f"customers/{acme.engagement.customer_id}/")
    response = login(acme.members["owner"]).post(path, {"name": "X", "attributes": attributes})
    assert response.status_code == 400
    assert message in text(response)
    with tenant_scope(acme.tenant):
        assert Customer.objects.get(pk=acme.engagement.customer_id).name != "X"


def test_the_engagements_page_offers_adding_a_purchase_to_acting_roles_only(acme, login):
    assert "Add a purchase" in text(login(acme.members["owner"]).get(acme.path("engagements/")))
    assert "Add a purchase" not in text(login(acme.members["viewer"]).get(acme.path("engagements/")))
    detail = acme.path(f"engagements/{acme.engagement.id}/")
    assert "Edit customer" in text(login(acme.members["owner"]).get(detail))
    assert "Edit customer" not in text(login(acme.members["viewer"]).get(detail))
    with tenant_scope(acme.tenant):
        assert Engagement.objects.count() == 1


def test_an_empty_form_names_every_missing_field_at_once(acme, login):
    empty = _purchase(customer_id="", customer_name="", external_id="")
    page = text(login(acme.members["owner"]).post(acme.path(NEW), empty))
    for label in ("Customer id", "Customer name", "Purchase id"):
        assert f"{label}: This field may not be blank." in page
