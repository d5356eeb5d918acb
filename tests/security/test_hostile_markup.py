"""What a user or an API client typed, shown on every page and in every email, and in the CSV export.

Markup in any free-text field is shown escaped wherever it appears, so it never runs or breaks out of an
attribute; and no cell of the CSV export starts with a character a spreadsheet would run as a formula.
"""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import escape

from engagement.services import customer_upsert, event_record, note_add, offering_save, purchase_record
from metrics.alerts import stalled_scan
from metrics.rollups import recompute_rollups
from notify.confirmations import answer_url, confirmation_email
from notify.digests import digest_for, digest_message
from notify.models import ValueConfirmation, WebhookEndpoint
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tenants.services import member_add

# Markup in every text field, on every page and email that shows it ------------------------------------

PAYLOAD = """<script>alert(1)</script>"'><img src=x onerror=alert(1)>"""
# Raw fragments that must never reach a page: each would run or break out of an attribute.
LIVE_MARKUP = ("<script>alert(1)", "<img src=x", "'><img", "\"'><")
ESCAPED = escape("<script>alert(1)</script>")
QUOTED_EMAIL = "x'&y@example.com"  # a valid address whose local part holds characters HTML must escape


@pytest.fixture
def marked_up(world, actor):
    """Every free-text field a user or an API client sets holds PAYLOAD: the company's name, a member's
    names, a customer (name, external id, segment, email), a purchase id, an offering and its milestones,
    a note, event comments and reasons, an API key (which labels what it records), a webhook URL;
    then the stalled scan (an alert) and the rollups (overview, team)."""
    tenant = world.tenant
    Tenant.objects.filter(pk=tenant.pk).update(name=PAYLOAD)
    tenant.refresh_from_db()
    owner = world.members["owner"]
    type(owner.user).objects.filter(pk=owner.user.pk).update(first_name=PAYLOAD, last_name=PAYLOAD)
    with tenant_scope(tenant):
        offering, _ = offering_save(
            tenant=tenant,
            key="xss",
            name=PAYLOAD,
            actor=actor,
            milestones=[
                {"key": "first", "name": PAYLOAD + " 1", "due_day": 2},
                {"key": "last", "name": PAYLOAD, "due_day": 9},
            ],
        )
        customer, _ = customer_upsert(
            tenant=tenant, external_id=PAYLOAD, name=PAYLOAD, segment=PAYLOAD, email=QUOTED_EMAIL, actor=actor
        )
        purchase, _ = purchase_record(
            tenant=tenant,
            external_id=PAYLOAD + "-p",
            customer=customer,
            offering=offering,
            purchased_at=timezone.now() - timedelta(days=20),
            actor=actor,
            owner=owner,
            sales_rep=world.members["sales"],
        )
        key, _ = api_key_create(tenant=tenant, name=PAYLOAD, scope="write", actor=actor)
        engagement = purchase.engagement
        event_record(
            tenant=tenant,
            engagement=engagement,
            type="milestone",
            milestone="first",
            comment=PAYLOAD,
            occurred_at=timezone.now() - timedelta(days=19),
            actor=Actor.for_api_key(key),
        )
        event_record(
            tenant=tenant,
            engagement=world.engagement,
            type="lost",
            reason=PAYLOAD,
            comment=PAYLOAD,
            occurred_at=timezone.now() - timedelta(days=1),
            actor=actor,
        )
        note_add(tenant=tenant, engagement=engagement, body=PAYLOAD, actor=Actor.for_member(owner))
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url="https://example.com/h?x=" + PAYLOAD, events=["alert.opened"], secret="whsec_test"
        )
        stalled_scan(tenant)
        recompute_rollups(tenant)
    return {"engagement": engagement, "offering": offering, "endpoint": endpoint, "owner": owner}  # fmt: skip


def assert_escaped(content, where):
    text = content.decode() if isinstance(content, bytes) else content
    for fragment in LIVE_MARKUP:
        assert fragment not in text, (where, fragment, text[max(0, text.find(fragment) - 300) :][:600])
    assert ESCAPED in text, (where, "the payload is not shown at all")


def test_every_page_shows_typed_markup_escaped(world, login, marked_up):
    engagement, endpoint, owner = marked_up["engagement"], marked_up["endpoint"], marked_up["owner"]
    pages = ["", "?segment=" + PAYLOAD, "engagements/", f"engagements/?q={PAYLOAD}", f"engagements/{engagement.id}/",
             "alerts/", "team/", "journeys/", "journeys/xss/", "settings/", "settings/webhooks/",
             f"settings/webhooks/{endpoint.id}/", f"settings/webhooks/{endpoint.id}/delete/", "digest/",
             f"settings/digests/?member={owner.id}"]  # fmt: skip
    client = login(world.members["admin"])
    for page in pages:
        response = client.get(world.path(page))
        assert response.status_code == 200, (page, response.status_code)
        assert_escaped(response.content, page)


def test_a_failed_form_shows_the_typed_markup_escaped(world, login, marked_up):
    client = login(world.members["admin"])
    engagement = marked_up["engagement"]
    failed = [
        client.post(world.path(f"engagements/{engagement.id}/milestone/"), {"milestone": PAYLOAD}),
        client.post(world.path(f"engagements/{engagement.id}/reassign/"), {"owner": PAYLOAD}),
        client.post(world.path("journeys/new/"), {"key": PAYLOAD, "name": PAYLOAD, "m_key": PAYLOAD}),
        client.post(world.path("settings/members/invite/"), {"email": PAYLOAD, "role": "viewer"}),
        client.post(world.path("settings/company/"), {"name": "Acme", "time_zone": PAYLOAD, "grace_days": "3",
                                                      "escalation_days": "7"}),
        client.post(world.path("settings/webhooks/new/"), {"url": PAYLOAD, "events": PAYLOAD}),
    ]  # fmt: skip
    for response in failed:
        assert response.status_code in (200, 400), response.status_code
        assert_escaped(response.content, response.request["PATH_INFO"])


def test_emails_show_typed_markup_escaped(world, marked_up):
    tenant, owner = world.tenant, marked_up["owner"]
    with tenant_scope(tenant):
        digest = digest_message(digest_for(tenant, owner, "daily"))
        confirmation = ValueConfirmation.objects.create(
            tenant=tenant, engagement=marked_up["engagement"], email=QUOTED_EMAIL, claimed_at=timezone.now()
        )
        asked = confirmation_email(tenant, confirmation)
    for name, message in (("digest", digest), ("confirmation", asked)):
        ((html, _),) = message.alternatives
        assert_escaped(html, name)


def test_the_value_confirmation_page_shows_typed_markup_escaped(world, marked_up, client):
    with tenant_scope(world.tenant):
        confirmation = ValueConfirmation.objects.create(
            tenant=world.tenant, engagement=marked_up["engagement"], email=QUOTED_EMAIL, claimed_at=timezone.now()
        )
        url = answer_url(confirmation, 5)
    response = client.get(url.split("://", 1)[-1].split("/", 1)[-1].join(["/", ""]))
    assert response.status_code == 200
    assert_escaped(response.content, "value confirmation")


# The CSV export: no cell a spreadsheet would run as a formula ------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_the_csv_export_neutralises_formulas_in_every_text_column(world, login, actor):
    tenant, typed = world.tenant, []
    with tenant_scope(tenant):
        for i, start in enumerate(FORMULA_STARTS):
            formula = f'{start}HYPERLINK("https://evil.example/?{i}","x")'
            rep = member_add(tenant=tenant, email=f"{'=+-'[i % 3]}rep{i}@acme.test", role="sales")[0]
            customer, _ = customer_upsert(
                tenant=tenant, external_id=formula + "c", name=formula, segment=formula, actor=actor
            )
            purchase_record(
                tenant=tenant,
                external_id=formula + "p",
                customer=customer,
                offering=world.offering,
                purchased_at=timezone.now() - timedelta(days=3),
                actor=actor,
                owner=rep,
                sales_rep=rep,
            )
            typed += [formula, formula + "c", formula + "p", rep.user.email]
    client = login(world.members["admin"])
    response = client.get(world.path("engagements/export.csv"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    cells = [cell for row in rows[1:] for cell in row]
    assert [cell for cell in cells if cell.startswith(FORMULA_STARTS)] == []
    for value in typed:  # each is there, quoted, and otherwise as typed
        assert "'" + value in cells, value
