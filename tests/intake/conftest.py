"""Connections of tenant "acme": an offering whose journey is m1, m2, m3 (PoV), and a helper that makes a
connection of each kind through the service, as Settings → Connections does."""

import pytest
from django.test import Client

from engagement.models import Engagement, Event, Purchase
from intake import services
from intake.models import Arrival
from tenants.scoping import tenant_scope
from tests.factories import make_offering

STRIPE_SECRET = "whsec_acme_stripe_signing_secret"
HUBSPOT_SECRET = "acme-hubspot-client-secret"


@pytest.fixture
def offering(tenant):
    with tenant_scope(tenant):
        return make_offering(tenant, key="software", due_days=(2, 7, 14))


@pytest.fixture
def connect(tenant, offering, actor):
    def make(kind, mapping, secret=None, name=None):
        with tenant_scope(tenant):
            return services.connection_create(
                tenant=tenant, kind=kind, name=name or f"{kind} (test)", mapping=mapping, secret=secret, actor=actor
            )

    return make


def address(connection, call=None):
    path = f"/in/{connection.tenant.slug}/{connection.pk}"
    return f"{path}/v1/{call}" if call else path


def post(connection, body, headers=None, call=None, content_type="application/json"):
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()}
    return Client().post(address(connection, call), data=body, content_type=content_type, **extra)


def stored(tenant):
    """(purchases, engagements, events, arrivals) of the tenant, as lists of dicts, for before/after checks."""
    with tenant_scope(tenant):
        return {
            "purchases": list(Purchase.objects.values("external_id", "customer__external_id", "amount", "currency")),
            "engagements": list(Engagement.objects.values("purchase__external_id", "status")),
            "events": list(Event.objects.values("type", "external_id", "source")),
        }


def log(connection):
    with tenant_scope(connection.tenant):
        return list(
            Arrival.objects.filter(connection=connection).order_by("at").values("outcome", "summary", "vendor_id")
        )
