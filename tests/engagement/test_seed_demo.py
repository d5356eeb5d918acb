from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone

from engagement import demo
from engagement.models import Customer, Engagement, Event, Milestone, Offering, Purchase
from tenants.models import Member, Tenant, User
from tenants.scoping import tenant_scope

CUSTOMERS = 120
ROLE_LOGINS = {
    "admin@demo.pov": "admin",
    "owner@demo.pov": "owner",
    "sales@demo.pov": "sales",
    "service@demo.pov": "service",
    "viewer@demo.pov": "viewer",
}


def _seed_demo(*args, customers=CUSTOMERS):
    out = StringIO()
    call_command("seed_demo", "--customers", str(customers), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _debug(settings):
    # As under `make run`, which seeds with DEBUG=1; the tests below that turn it off say so.
    settings.DEBUG = True


@pytest.fixture(autouse=True)
def _default_port(monkeypatch):
    # The printed URL follows $PORT like `make run`; the assertions expect the default.
    monkeypatch.delenv("PORT", raising=False)


@pytest.fixture
def seeded(db):
    """The demo seeded once, with the command's output; the test runs inside the demo's scope."""
    output = _seed_demo()
    tenant = Tenant.objects.get(slug="demo")
    with tenant_scope(tenant):
        yield tenant, output


def _engagement_rows():
    fields = [f.attname for f in Engagement._meta.concrete_fields]
    return list(Engagement.objects.order_by("id").values_list(*fields))


def test_seed_creates_the_demo_tenant_with_a_login_per_role(seeded):
    tenant, output = seeded
    assert tenant.name == "Demo Bank & Electronics"
    assert tenant.time_zone == "Europe/Berlin"
    for email, role in ROLE_LOGINS.items():
        user = authenticate(email=email, password=demo.PASSWORD)
        assert user is not None, email
        assert Member.objects.get(user=user).role == role
        assert f"{email}" in output and role in output
    assert authenticate(email="owner@demo.pov", password="wrong-password") is None
    admin = User.objects.get(email="admin@demo.pov")
    assert admin.is_superuser and admin.is_staff
    assert not User.objects.get(email="owner@demo.pov").is_staff
    # More owners and sales reps than one each, so the scoreboards compare people.
    assert Member.objects.filter(role="owner").count() >= 3
    assert Member.objects.filter(role="sales").count() >= 3
    assert demo.PASSWORD in output
    assert "Open http://127.0.0.1:8000/ and sign in." in output


def test_offerings_have_journeys_of_three_to_five_milestones(seeded):
    offerings = {o.key: o for o in Offering.objects.all()}
    assert set(offerings) == {"credit-card", "tv", "software", "bill-pay"}
    for offering in offerings.values():
        milestones = list(Milestone.objects.filter(offering=offering).order_by("order"))
        assert 3 <= len(milestones) <= 5, offering.key
        assert [m.is_pov for m in milestones] == [False] * (len(milestones) - 1) + [True]
        assert offering.target_days == milestones[-1].due_day
        assert [m.due_day for m in milestones] == sorted(m.due_day for m in milestones)
    assert offerings["tv"].requires_satisfaction and offerings["tv"].satisfaction_threshold == 4
    assert not offerings["credit-card"].requires_satisfaction
    assert offerings["software"].target_days == 60


def test_every_customer_has_a_purchase_with_one_engagement(seeded):
    now = timezone.now()
    assert Customer.objects.count() == CUSTOMERS
    purchases = Purchase.objects.count()
    assert CUSTOMERS <= purchases < CUSTOMERS * 1.5  # some bank customers hold both bank products
    assert Engagement.objects.count() == purchases
    assert not Customer.objects.filter(purchases__isnull=True).exists()
    assert not Engagement.objects.exclude(pos_at=F("purchase__purchased_at")).exists()
    assert not Engagement.objects.exclude(customer=F("purchase__customer")).exists()
    assert not Engagement.objects.exclude(offering=F("purchase__offering")).exists()
    assert set(Purchase.objects.values_list("currency", flat=True)) == {"EUR"}
    assert not Purchase.objects.filter(amount__isnull=True).exists()
    assert not Purchase.objects.filter(purchased_at__gt=now).exists()
    assert not Purchase.objects.filter(purchased_at__lt=now - timedelta(days=366)).exists()
    assert set(Customer.objects.values_list("segment", flat=True)) == {"consumer", "smb", "enterprise"}


def test_status_mix_has_every_status_and_unowned_engagements(seeded):
    statuses = list(Engagement.objects.values_list("status", flat=True))
    assert set(statuses) == {"reached", "stalled", "paused", "lost", "on_track"}
    assert max(set(statuses), key=statuses.count) == "reached"
    assert Engagement.objects.filter(owner__isnull=True).exists()
    assert Engagement.objects.filter(owner__isnull=False).values("owner").distinct().count() >= 3
    lost = set(Engagement.objects.filter(status="lost").values_list("id", flat=True))
    with_reason = set(Event.objects.filter(type="lost").exclude(reason="").values_list("engagement_id", flat=True))
    assert lost and lost <= with_reason
    assert not Engagement.objects.filter(status="paused", paused_since__isnull=True).exists()
    # Some pauses ended and the customer went on.
    assert Engagement.objects.filter(events__type="resumed").exists()


def test_satisfaction_is_surveyed_for_the_tv_only(seeded):
    surveyed = Event.objects.filter(type="satisfaction")
    assert surveyed.exists()
    assert set(surveyed.values_list("engagement__offering__key", flat=True)) == {"tv"}
    assert not surveyed.filter(score__isnull=True).exists()
    reached_tvs = set(Engagement.objects.filter(offering__key="tv", status="reached").values_list("id", flat=True))
    satisfied = set(surveyed.filter(score__gte=4).values_list("engagement_id", flat=True))
    assert reached_tvs and reached_tvs <= satisfied


def test_no_event_before_its_purchase_or_in_the_future(seeded):
    events = Event.objects.all()
    assert events.count() > CUSTOMERS  # several per engagement: the checks below are not vacuous
    assert not events.filter(occurred_at__lt=F("engagement__pos_at")).exists()
    assert not events.filter(occurred_at__gt=timezone.now()).exists()
    assert set(events.values_list("source", "recorded_by").distinct()) == {("system", "seed_demo")}


def test_recompute_after_seeding_changes_no_engagement_row(seeded):
    before = _engagement_rows()
    assert len(before) >= CUSTOMERS
    call_command("recompute", "--tenant", "demo", stdout=StringIO(), stderr=StringIO())
    assert _engagement_rows() == before


def test_the_same_seed_builds_the_same_population(seeded):
    tenant, _ = seeded
    members = {m.user.email: m for m in Member.objects.select_related("user")}
    offerings = {o.key: (o, {m.key: m for m in Milestone.objects.filter(offering=o)}) for o in Offering.objects.all()}
    now = timezone.now()

    def build(seed):
        rows = demo.PopulationBuilder(tenant=tenant, members=members, offerings=offerings, now=now, seed=seed).build(50)
        return [(e.type, e.occurred_at, e.milestone_id, e.score) for e in rows.events]

    assert build(demo.SEED) == build(demo.SEED)
    assert build(demo.SEED) != build(demo.SEED + 1)


def test_if_empty_on_an_existing_demo_skips_and_prints_the_logins(seeded):
    counts = (Customer.objects.count(), Purchase.objects.count(), Event.objects.count(), User.objects.count())
    output = _seed_demo("--if-empty")
    assert (Customer.objects.count(), Purchase.objects.count(), Event.objects.count(), User.objects.count()) == counts
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert "already exists" in output
    for email in ROLE_LOGINS:
        assert email in output
    assert demo.PASSWORD in output
    assert "Open http://127.0.0.1:8000/ and sign in." in output


def test_if_empty_skips_when_another_tenant_exists(other_tenant):
    output = _seed_demo("--if-empty")
    assert not Tenant.objects.filter(slug="demo").exists()
    assert "charlie" in output
    assert "Open http://127.0.0.1:8000/ and sign in." in output


def test_if_empty_seeds_an_empty_database(db):
    output = _seed_demo("--if-empty", customers=10)
    tenant = Tenant.objects.get(slug="demo")
    with tenant_scope(tenant):
        assert Customer.objects.count() == 10
    assert "admin@demo.pov" in output


def test_seeding_twice_without_if_empty_fails_clearly(seeded):
    with pytest.raises(CommandError, match="'demo' already exists"):
        _seed_demo()
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert Customer.objects.count() == CUSTOMERS


def test_without_debug_it_refuses_to_publish_a_superuser_password(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match=r"runs only with DEBUG=1\. Pass --i-know"):
        _seed_demo(customers=10)
    assert not Tenant.objects.exists() and not User.objects.exists()


def test_without_debug_it_seeds_when_told_the_risk_is_known(db, settings):
    settings.DEBUG = False
    _seed_demo("--i-know", customers=10)
    assert User.objects.get(email="admin@demo.pov").is_superuser


def test_customers_must_be_positive(db):
    with pytest.raises(CommandError, match="at least 1"):
        _seed_demo(customers=0)
    assert not Tenant.objects.exists()


def test_an_existing_user_keeps_their_password_and_is_told_so(db):
    User.objects.create_user("viewer@demo.pov", password="correct-horse-battery")
    output = _seed_demo(customers=10)
    assert authenticate(email="viewer@demo.pov", password="correct-horse-battery") is not None
    assert authenticate(email="viewer@demo.pov", password=demo.PASSWORD) is None
    assert "viewer@demo.pov        viewer  (existing user: password unchanged)" in output
    assert authenticate(email="owner@demo.pov", password=demo.PASSWORD) is not None
