"""The matrix's two tenants: A ("acme"), rich in every object a URL can point at, and B ("charlie"), whose
admin and write key do the asking; what identifies A, and a snapshot of A's rows to compare. For the
hostile-input tests: the web world they post to, and what a clear API error looks like."""

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client
from django.utils import timezone

from engagement import assignment, imports
from engagement.models import Customer, Event, Import, ImportState, Note, NoteKind, Offering, Purchase
from engagement.services import customer_upsert, event_record, note_add, purchase_record
from intake import services as intake_services
from metrics.rollups import recompute_rollups
from notify import digests, webhooks
from notify.models import ValueConfirmation, WebhookAttempt, WebhookEndpoint
from pov.celery import app as celery_app
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.models import ApiKey, IdempotencyKey, Member, Tenant, User
from tenants.scoping import tenant_scope
from tenants.services import member_add
from tests.api.conftest import error_of
from tests.factories import TenantFactory
from tests.web.conftest import build_world

# Tenant A, rich, and tenant B ---------------------------------------------------------------------------


@dataclass
class Matrix:
    a: object  # tests.web.conftest.World of tenant A ("acme")
    b: object  # World of tenant B ("charlie")
    b_raw_key: str
    customer: object  # A's second customer, with an email and a segment
    purchase: object  # A's second purchase: a milestone and a satisfaction recorded
    invitee: object  # A's invited member (no password yet)
    endpoint: object
    confirmation: object
    idempotency_key: str
    idempotent_body: dict
    rule: object  # an owner rule
    import_run: object  # an import of purchases, with a rejected row
    connection: object  # a Stripe connection, with a line in its log
    secrets: frozenset = frozenset()


def _rename_first_customer(a):
    """build_world's customer has a factory name ("Customer 7") that could be a substring of B's ones."""
    Customer.objects.filter(pk=a.engagement.customer_id).update(
        name="Ada Acmeworth", email="ada@acme-buyer.test", external_id="ACME-CUS-0"
    )


def _second_engagement(a, actor, now):
    customer, _ = customer_upsert(tenant=a.tenant, external_id="ACME-CUS-1", name="Grace Acmeton",
                                  email="grace@acme-buyer.test", segment="acme-enterprise", actor=actor)  # fmt: skip
    purchase, _ = purchase_record(
        tenant=a.tenant, external_id="ACME-P-2", customer=customer, offering=a.offering, actor=actor,
        purchased_at=now - timedelta(days=10), amount="4200.00", currency="EUR",
        owner=a.members["owner"], sales_rep=a.members["sales"],
    )  # fmt: skip
    engagement = purchase.engagement
    event_record(tenant=a.tenant, engagement=engagement, type="milestone", milestone="m1",
                 occurred_at=now - timedelta(days=9), external_id="ACME-EVT-1", actor=actor)  # fmt: skip
    event_record(tenant=a.tenant, engagement=engagement, type="satisfaction", score=4,
                 comment="Acme confidential comment", occurred_at=now - timedelta(days=8),
                 external_id="ACME-EVT-2", actor=actor)  # fmt: skip
    return customer, purchase


def _webhook(a, actor, now):
    endpoint, _ = webhooks.endpoint_create(
        tenant=a.tenant, url="https://hooks.acme-receiver.test/pov", events=["engagement.lost"], actor=actor
    )
    delivery = webhooks.endpoint_send_test(tenant=a.tenant, endpoint=endpoint, actor=actor)
    WebhookAttempt.objects.create(tenant=a.tenant, delivery=delivery, at=now, status=200,
                                  response_excerpt="acme-receiver accepted")  # fmt: skip
    return endpoint


def _idempotent_post(a, actor):
    """A's CRM creates a customer with an Idempotency-Key, so A has a stored response to replay."""
    with tenant_scope(a.tenant):
        _, raw = api_key_create(tenant=a.tenant, name="Matrix", scope="write", actor=actor)
    key, body = "acme-idem-7f3a", {"external_id": "ACME-CUS-2", "name": "Idris Acmeford"}
    response = Client().post("/api/v1/customers/", json.dumps(body), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IDEMPOTENCY_KEY=key)  # fmt: skip
    assert response.status_code == 201, response.content
    return key, body


def enrich(a, actor):
    """Everything a URL kwarg can point at, in A: customers, purchases, events, notes, a reached milestone,
    a value confirmation, a webhook endpoint with a delivery and an attempt, an invitation, a digest
    preference, an idempotency key and metric rollups."""
    now = timezone.now()
    with tenant_scope(a.tenant):
        _rename_first_customer(a)
        customer, purchase = _second_engagement(a, actor, now)
        note_add(tenant=a.tenant, engagement=a.engagement, body="Acme handoff: renewal terms", actor=actor,
                 kind=NoteKind.HANDOFF)  # fmt: skip
        confirmation = ValueConfirmation.objects.create(
            tenant=a.tenant, engagement=purchase.engagement, email="grace@acme-buyer.test", claimed_at=now
        )
        endpoint = _webhook(a, actor, now)
        invitee, _ = member_add(tenant=a.tenant, email="invitee@acme.test", role="viewer")
        digests.digest_set_frequency(tenant=a.tenant, member=a.members["owner"], frequency="weekly", actor=actor)
        rule = assignment.rule_add(tenant=a.tenant, actor=actor, offering=a.offering, segment="acme-enterprise",
                                   method="round_robin", members=[a.members["owner"]])  # fmt: skip
        import_run = _import(a, actor)
        connection = _connection(a, actor)
        recompute_rollups(a.tenant)
    key, body = _idempotent_post(a, actor)
    return {
        "customer": customer, "purchase": purchase, "invitee": invitee, "endpoint": endpoint,
        "confirmation": confirmation, "idempotency_key": key, "idempotent_body": body, "rule": rule,
        "import_run": import_run, "connection": connection,
    }  # fmt: skip


def _connection(a, actor):
    connection = intake_services.connection_create(
        tenant=a.tenant,
        kind="stripe",
        name="Acme Stripe",
        mapping={"prices": {"price_acme": a.offering.key}},
        secret="whsec_acme_matrix",
        actor=actor,
    )
    intake_services.arrival_log(tenant=a.tenant, connection=connection, outcome="accepted", vendor_id="evt_acme",
                                summary="Recorded purchase acme-stripe-purchase.")  # fmt: skip
    return connection


def _import(a, actor):
    """An import of A's, run in this process: one row stored, one rejected."""
    raw = (f"external_id,customer,customer.name,offering,purchased_at\n"
           f"ACME-IMP-1,ACME-CUS-9,Imogen Acmeby,{a.offering.key},2026-01-05 10:00\n"
           f"ACME-IMP-2,ACME-CUS-9,Imogen Acmeby,no-such-offering,2026-01-05 10:00\n").encode()  # fmt: skip
    run = imports.import_create(tenant=a.tenant, actor=actor, kind="purchases", filename="acme-orders.csv", raw=raw)
    Import.objects.filter(pk=run.pk).update(state=ImportState.QUEUED)
    imports.run_import(a.tenant, str(run.pk))
    return run


def tenant_models():
    return [
        model
        for model in apps.get_models()
        if any(f.name == "tenant" and f.related_model is Tenant for f in model._meta.fields)
    ]


def _text(value):
    return str(value) if value not in (None, "") else None


def identifying_strings(tenant):
    """What identifies A: its name and slug, every UUID of its rows, and the names, emails and external
    ids a person or a CRM would recognise. Read inside A's scope."""
    found = {tenant.name, tenant.slug, str(tenant.pk)}
    with tenant_scope(tenant):
        for model in tenant_models():
            found.update(str(pk) for pk in model._default_manager.filter(tenant=tenant).values_list("pk", flat=True)
                         if isinstance(pk, uuid.UUID))  # fmt: skip
        for fields, model in (
            (("name", "email", "external_id", "segment"), Customer),
            (("external_id",), Purchase),
            (("key", "name"), Offering),
            (("external_id", "comment", "reason"), Event),
            (("prefix",), ApiKey),
            (("key",), IdempotencyKey),
            (("email",), ValueConfirmation),
            (("body",), Note),
            (("url", "secret"), WebhookEndpoint),
            (("filename",), Import),
        ):
            for row in model._default_manager.filter(tenant=tenant).values_list(*fields):
                found.update(row)
        found.update(Member.objects.values_list("user__email", flat=True))
    return frozenset(s for s in map(_text, found) if s and len(s) >= 4)


def tenant_state(tenant):
    """Every tenant-owned row of `tenant`, its users and its own row, for a before/after comparison."""
    state = {"tenant": repr(Tenant.objects.filter(pk=tenant.pk).values_list().get())}
    with tenant_scope(tenant):
        for model in tenant_models():
            rows = model._default_manager.filter(tenant=tenant).values_list()
            state[model._meta.label] = sorted(map(repr, rows))
        users = User.objects.filter(memberships__tenant=tenant).values_list(
            "email", "password", "is_active", "is_staff", "is_superuser", "last_login"
        )
        state["users"] = sorted(map(repr, users))
    return state


def build_matrix():
    actor = Actor.system("tests")
    a = build_world(TenantFactory(slug="acme", name="Acme"), actor)
    b = build_world(TenantFactory(slug="charlie", name="Charlie Corp"), actor)
    extras = enrich(a, actor)
    with tenant_scope(b.tenant):
        # The admin scope: everything a write key may do, and connections.
        _, b_raw_key = api_key_create(tenant=b.tenant, name="Matrix", scope="admin", actor=actor)
    built = Matrix(a=a, b=b, b_raw_key=b_raw_key, **extras)
    built.secrets = identifying_strings(a.tenant)
    return built


def drop(tenants):
    """Delete what build_matrix committed: each tenant inside its own scope (the cascade reaches every row),
    then its users, and the tasks its writes enqueued (they name tenants that are gone)."""
    for tenant in tenants:
        with tenant_scope(tenant):
            emails = list(Member.objects.values_list("user__email", flat=True))
            tenant.delete()
        User.objects.filter(email__in=emails).delete()
    try:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_QUEUE)
    except Exception:  # noqa: BLE001 - best effort, like the session's own purge: the queue may not exist
        pass


@pytest.fixture(scope="module")
def matrix_world(django_db_setup, django_db_blocker):
    """Built once for the module and committed; each test runs in a transaction that is rolled back, so
    whatever a request changes is gone before the next test. Hundreds of cases share it."""
    with django_db_blocker.unblock():
        built = build_matrix()
        yield built
        drop([built.a.tenant, built.b.tenant])


@pytest.fixture
def matrix(matrix_world, db):
    return matrix_world


# Hostile input -----------------------------------------------------------------------------------------


@pytest.fixture
def world(tenant, actor):
    """acme with a member of every role, a stalled engagement with an open alert, and an API key."""
    return build_world(tenant, actor)


def assert_clear_error(response, status=400, code=None):
    """A 4xx in the API's JSON error format; never a 500."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:2000])
        status = response.status_code
    return error_of(response, status, code)
