"""The digest tests' tenants, and how they send and read a digest.

Acme (Europe/Berlin) has one member per role and three customers: "Stalled Co" (bought 20 days ago,
nothing reached: stalled, 18 days past its first milestone, with an open alert), "Happy Co" (reached
PoV two hours ago) and "Fresh Co" (its first milestone due tomorrow). The owner owns all three; the
sales member sold Stalled Co and Happy Co (PoV rate 50 %). Charlie has a stalled "Charlie Secret Co"
owned by the same person, which must never appear in an Acme digest. The `acme` and `charlie` fixtures
(tests/notify/conftest.py) build them.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from engagement.services import event_record, purchase_record
from metrics.alerts import stalled_scan
from notify import digests
from tenants.scoping import tenant_scope
from tests.factories import CustomerFactory, MemberFactory, make_offering

SITE = "https://pov.example.com"


@dataclass
class World:
    tenant: object
    members: dict
    customers: dict  # name -> engagement


def _buy(tenant, offering, actor, name, *, days_ago, owner=None, sales_rep=None):
    customer = CustomerFactory(tenant=tenant, name=name)
    purchase, _ = purchase_record(
        tenant=tenant, external_id=f"p-{customer.external_id}", customer=customer, offering=offering,
        purchased_at=timezone.now() - timedelta(days=days_ago), actor=actor, owner=owner, sales_rep=sales_rep,
    )  # fmt: skip
    return purchase.engagement


def build_acme(tenant, actor):
    with tenant_scope(tenant):
        members = {
            role: MemberFactory(tenant=tenant, user__email=f"{role}@acme.test", role=role)
            for role in ("owner", "sales", "service", "admin", "viewer")
        }
        owner, sales = members["owner"], members["sales"]
        offering = make_offering(tenant, due_days=(2, 7, 14))
        customers = {
            "Stalled Co": _buy(tenant, offering, actor, "Stalled Co", days_ago=20, owner=owner, sales_rep=sales),
            "Happy Co": _buy(tenant, offering, actor, "Happy Co", days_ago=10, owner=owner, sales_rep=sales),
            "Fresh Co": _buy(tenant, offering, actor, "Fresh Co", days_ago=1, owner=owner),
        }
        event_record(
            tenant=tenant, engagement=customers["Happy Co"], type="milestone", actor=actor,
            milestone=offering.milestones.get(is_pov=True), occurred_at=timezone.now() - timedelta(hours=2),
        )  # fmt: skip
        stalled_scan(tenant)
    return World(tenant, members, customers)


def build_charlie(tenant, acme_owner, actor):
    """The Acme owner is also an owner at Charlie, with a stalled customer and an open alert there."""
    with tenant_scope(tenant):
        owner = MemberFactory(tenant=tenant, user=acme_owner.user, role="owner")
        service = MemberFactory(tenant=tenant, user__email="service@charlie.test", role="service")
        offering = make_offering(tenant, key="charlie-software")
        secret = _buy(tenant, offering, actor, "Charlie Secret Co", days_ago=30, owner=owner)
        stalled_scan(tenant)
    return World(tenant, {"owner": owner, "service": service}, {"Charlie Secret Co": secret})


def send_now(world, role, now=None):
    """The member's digest for their current period, as `send_digests --now` sends it."""
    tenant, member = world.tenant, world.members[role]
    with tenant_scope(tenant):
        frequency, period = digests.current_period(tenant, member, now)
        return digests.deliver(tenant=tenant, member=member, frequency=frequency, period=period, now=now)


def header(message, name):
    # Django folds long and non-ASCII headers onto a continuation line; unfolded, they start with a space.
    return str(message[name]).strip()


def subject(message):
    return header(message, "Subject")


def parts(message):
    """The text and HTML parts, with the wire's CRLF line ends as newlines."""
    text, html = (message.get_body((kind,)).get_content() for kind in ("plain", "html"))
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def only_message_to(smtp, address):
    received = smtp.to(address)
    assert len(received) == 1, f"{len(received)} messages to {address}"
    return received[0]
