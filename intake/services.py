"""Writes of the intake app: connections (create, change, a new write key, delete) and the log of what
each received. What a connection brings in is recorded by engagement.intake, exactly as the API does."""

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from engagement.errors import Invalid
from engagement.models import Milestone, Offering
from intake.models import Arrival, Connection, Kind, Outcome
from notify.mail import absolute
from tenants.actors import Actor, audit
from tenants.models import Tenant

MAX_CONNECTIONS = 20
KEEP_ARRIVALS = timedelta(days=30)
PURGE_BATCH = 5_000
NAME_MAX = 100
VENDOR_ID_MAX = 255
SUMMARY_MAX = 1000
SECRET_MAX = 200
CUSTOMER_IDS = ("userId", "traits.company")  # where an analytics source names the customer
UNSET: Any = object()


def address(connection: Connection) -> str:
    """Where the vendor sends, from SITE_URL: the address admins give the vendor, and the one HubSpot signs."""
    return absolute("connection-receive", connection.tenant.slug, connection.pk)


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


# Mappings -----------------------------------------------------------------------------------------


def _offering_keys() -> set[str]:
    return set(Offering.objects.values_list("key", flat=True))


def _text(value: Any, field: str, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise Invalid({field: ["This is required."]})
        return ""
    if not isinstance(value, str) or len(value) > VENDOR_ID_MAX or "\x00" in value:
        raise Invalid({field: [f"Give text of at most {VENDOR_ID_MAX} characters."]})
    return value.strip()


def _known_offering(value: Any, field: str, offerings: set[str]) -> str:
    key = _text(value, field)
    if key not in offerings:
        raise Invalid({field: [f"No offering {key!r}; create it under Journeys first."]})
    return key


def _stripe_mapping(mapping: dict) -> dict:
    prices = mapping.get("prices", {})
    if not isinstance(prices, dict):
        raise Invalid(
            {
                "mapping.prices": [
                    'An object of Stripe price or product id -> offering key, e.g. {"price_1Nx": "onboarding"}.'
                ]
            }
        )
    offerings = _offering_keys()
    return {
        "prices": {
            _text(k, "mapping.prices"): _known_offering(v, f"mapping.prices.{k}", offerings) for k, v in prices.items()
        }
    }


def _hubspot_mapping(mapping: dict) -> dict:
    cleaned = {
        "won_stage": _text(mapping.get("won_stage"), "mapping.won_stage"),
        "lost_stage": _text(mapping.get("lost_stage"), "mapping.lost_stage", required=False),
        "offering": _known_offering(mapping.get("offering"), "mapping.offering", _offering_keys()),
    }
    if cleaned["won_stage"] == cleaned["lost_stage"]:
        raise Invalid({"mapping.lost_stage": ["The lost stage must differ from the won stage."]})
    return cleaned


def _segment_mapping(mapping: dict) -> dict:
    customer_id = mapping.get("customer_id", "userId")
    if customer_id not in CUSTOMER_IDS:
        raise Invalid({"mapping.customer_id": [f"One of: {', '.join(CUSTOMER_IDS)}."]})
    events = mapping.get("events", {})
    if not isinstance(events, dict):
        raise Invalid({"mapping.events": ['An object of event name -> {"offering", "milestone"}.']})
    offerings = {o.key: o for o in Offering.objects.all()}
    milestones = set(Milestone.objects.values_list("offering__key", "key"))
    cleaned = {}
    for name, target in events.items():
        field = f"mapping.events.{name}"
        if not isinstance(target, dict):
            raise Invalid({field: ['Give {"offering": key, "milestone": key}.']})
        offering = _known_offering(target.get("offering"), f"{field}.offering", set(offerings))
        milestone = _text(target.get("milestone"), f"{field}.milestone")
        if (offering, milestone) not in milestones:
            raise Invalid({f"{field}.milestone": [f"The journey of {offering!r} has no milestone {milestone!r}."]})
        cleaned[_text(name, "mapping.events")] = {"offering": offering, "milestone": milestone}
    return {"customer_id": customer_id, "events": cleaned}


MAPPINGS = {Kind.STRIPE: _stripe_mapping, Kind.HUBSPOT: _hubspot_mapping, Kind.SEGMENT: _segment_mapping}


def clean_mapping(kind: str, mapping: Any) -> dict:
    """The mapping of a connection of `kind`, checked against the company's offerings and journeys."""
    if not isinstance(mapping, dict):
        raise Invalid({"mapping": ["Send an object."]})
    return MAPPINGS[Kind(kind)](mapping)


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid({"name": ["Give the connection a name, e.g. 'Stripe (live)'."]})
    if len(name.strip()) > NAME_MAX:
        raise Invalid({"name": [f"At most {NAME_MAX} characters."]})
    return name.strip()


def _clean_secret(secret: Any) -> str:
    if not isinstance(secret, str) or len(secret.strip()) > SECRET_MAX or "\x00" in secret:
        raise Invalid({"secret": [f"Paste the secret as the vendor shows it (at most {SECRET_MAX} characters)."]})
    return secret.strip()


# Connections --------------------------------------------------------------------------------------


def connection_create(
    *, tenant: Tenant, kind: Any, name: Any, mapping: Any, actor: Actor, secret: Any = None, enabled: bool = True
) -> Connection:
    """A new connection. An analytics source gets a write key PoV makes; Stripe and HubSpot make their own
    secrets, which the admin pastes here (now or later)."""
    if kind not in Kind.values:
        raise Invalid({"kind": [f"One of: {', '.join(Kind.values)}."]})
    # An empty mapping is allowed at first: the page creates the connection, then asks for its mapping.
    name, mapping = _clean_name(name), clean_mapping(kind, mapping) if mapping else {}
    if kind == Kind.SEGMENT and secret:
        raise Invalid({"secret": ["PoV makes an analytics source's write key; leave the secret out."]})
    pasted = _clean_secret(secret) if secret else ""
    secret = new_write_key() if kind == Kind.SEGMENT else pasted
    with transaction.atomic():
        if Connection.objects.count() >= MAX_CONNECTIONS:
            raise Invalid({"kind": [f"A company has at most {MAX_CONNECTIONS} connections; delete one first."]})
        connection = Connection.objects.create(
            tenant=tenant, kind=kind, name=name, mapping=mapping, secret=secret, enabled=bool(enabled)
        )
        audit(tenant=tenant, actor=actor, action="connection.created", target=connection, kind=kind, name=name)
    return connection


def connection_update(
    *, tenant: Tenant, connection: Connection, actor: Actor, name: Any = UNSET, mapping: Any = UNSET,
    enabled: Any = UNSET, secret: Any = UNSET,
) -> Connection:  # fmt: skip
    """Change what is given; a Stripe or HubSpot secret pasted again replaces the stored one."""
    changed: dict[str, Any] = {}
    if name is not UNSET:
        changed["name"] = _clean_name(name)
    if mapping is not UNSET:
        changed["mapping"] = clean_mapping(connection.kind, mapping)
    if enabled is not UNSET:
        if not isinstance(enabled, bool):
            raise Invalid({"enabled": ["true or false."]})
        changed["enabled"] = enabled
    if secret is not UNSET:
        if connection.kind == Kind.SEGMENT:
            raise Invalid({"secret": ["PoV makes an analytics source's write key; ask for a new one instead."]})
        changed["secret"] = _clean_secret(secret or "")
    with transaction.atomic():
        for field, value in changed.items():
            setattr(connection, field, value)
        connection.save(update_fields=list(changed))
        shown = sorted(set(changed) - {"secret"})
        audit(tenant=tenant, actor=actor, action="connection.changed", target=connection, fields=shown,
              secret="secret" in changed)  # fmt: skip
    return connection


def connection_new_write_key(*, tenant: Tenant, connection: Connection, actor: Actor) -> str:
    """A new write key for an analytics source; the old one stops working at once. Returned to show once."""
    if connection.kind != Kind.SEGMENT:
        raise Invalid({"secret": ["Only an analytics source has a write key PoV makes."]})
    with transaction.atomic():
        connection.secret = new_write_key()
        connection.save(update_fields=["secret"])
        audit(tenant=tenant, actor=actor, action="connection.new_write_key", target=connection)
    return connection.secret


def connection_delete(*, tenant: Tenant, connection: Connection, actor: Actor) -> None:
    with transaction.atomic():
        audit(tenant=tenant, actor=actor, action="connection.deleted", target=connection, name=connection.name)
        connection.delete()


# What arrived -------------------------------------------------------------------------------------


def arrival_log(
    *, tenant: Tenant, connection: Connection, outcome: Outcome, summary: str, vendor_id: str = "",
    at: datetime | None = None,
) -> Arrival:  # fmt: skip
    """One line of a connection's log, in its own transaction, so a refused arrival is logged too."""
    return Arrival.objects.create(
        tenant=tenant, connection=connection, outcome=outcome, at=at or timezone.now(),
        summary=_storable(summary)[:SUMMARY_MAX], vendor_id=_storable(vendor_id or "")[:VENDOR_ID_MAX],
    )  # fmt: skip


def _storable(text: str) -> str:
    """What a vendor sent, as PostgreSQL text can hold it: no NUL, no lone surrogate."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode()


def arrivals_purge(tenant: Tenant, now: datetime | None = None) -> int:
    """Delete the log lines older than KEEP_ARRIVALS, PURGE_BATCH a statement. Returns how many."""
    old = Arrival.objects.filter(tenant=tenant, at__lt=(now or timezone.now()) - KEEP_ARRIVALS)
    purged = 0
    while deleted := Arrival.objects.filter(id__in=old.values("id")[:PURGE_BATCH]).delete()[0]:
        purged += deleted
    return purged
