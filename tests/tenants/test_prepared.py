"""tenants.prepared.Prepared: the same instances as the queryset it was built from, whatever the values,
and a scoped one runs for the active scope's tenant only."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django_scopes import ScopeError

from engagement import intake
from engagement.errors import Missing
from engagement.models import Engagement
from engagement.queries import ENGAGEMENT_RELATED
from engagement.services import customer_upsert, purchase_record
from tenants.prepared import Prepared
from tenants.scoping import tenant_scope
from tests.conftest import run_concurrently
from tests.factories import days_ago, make_offering


def _by_purchase(tenant_id, external_id):
    return Engagement.objects.select_related(*ENGAGEMENT_RELATED).filter(purchase__external_id=external_id)


def _purchase(tenant, actor, external_id, amount):
    with tenant_scope(tenant):
        customer = customer_upsert(
            tenant=tenant, external_id=f"C-{external_id}", name="Ada", attributes={"plan": external_id}, actor=actor
        )[0]
        offering = make_offering(tenant, key=f"o-{external_id}")
        return purchase_record(tenant=tenant, external_id=external_id, customer=customer, offering=offering,
                               purchased_at=days_ago(5), amount=amount, currency="EUR", actor=actor)[0]  # fmt: skip


def _shown(engagement):
    """What the API shows of an engagement and its select_related rows."""
    return (
        engagement.id, engagement.status, engagement.next_step, engagement.pos_at,
        engagement.purchase.external_id, engagement.purchase.amount, engagement.customer.attributes,
        engagement.offering.key, engagement.owner, engagement.sales_rep,
    )  # fmt: skip


@pytest.fixture
def two_purchases(tenant, other_tenant, actor):
    return _purchase(tenant, actor, "P-1", Decimal("10.50")), _purchase(other_tenant, actor, "P-2", Decimal("7"))


def test_each_call_finds_the_rows_of_its_own_values_with_their_related_rows(tenant, other_tenant, two_purchases):
    prepared = Prepared(_by_purchase, scoped=True)
    for owner, purchase in zip((tenant, other_tenant), two_purchases, strict=True):
        with tenant_scope(owner):
            [found] = prepared(purchase.external_id)
            [expected] = _by_purchase(owner.pk, purchase.external_id)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(connection, "cursor", lambda: pytest.fail("a related row was queried"))
                assert _shown(found) == _shown(expected)
                assert _shown(found)[4:8] == (purchase.external_id, purchase.amount, {"plan": purchase.external_id},
                                              f"o-{purchase.external_id}")  # fmt: skip


def test_a_scoped_query_runs_for_the_active_scope_and_fails_closed_outside_one(tenant, other_tenant, two_purchases):
    prepared = Prepared(_by_purchase, scoped=True)
    with tenant_scope(tenant):
        assert [e.purchase.external_id for e in prepared("P-1")] == ["P-1"]
        assert prepared("P-2") == []
    with tenant_scope(other_tenant):
        assert prepared("P-1") == []
        assert [e.purchase.external_id for e in prepared("P-2")] == ["P-2"]
    with pytest.raises(ScopeError):
        prepared("P-1")


def test_an_unscoped_query_takes_every_value_from_the_call(tenant, two_purchases):
    prepared = Prepared(lambda tenant_id, ref: _by_purchase(tenant_id, ref).filter(tenant_id=tenant_id), scoped=False)
    with tenant_scope(tenant):
        assert len(prepared(tenant.pk, "P-1")) == 1
        assert prepared(tenant.pk, "P-2") == []


def _locked_by_purchase(tenant_id, external_id):
    return _by_purchase(tenant_id, external_id).select_for_update(of=("self",))


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not connection.features.has_select_for_update, reason="the database has no row locks")
def test_a_locking_query_needs_a_transaction(tenant, two_purchases):
    prepared = Prepared(_locked_by_purchase, scoped=True)
    with tenant_scope(tenant):
        with transaction.atomic():
            assert prepared("P-1")
        # The second call reuses the compiled statement, which Django no longer checks.
        with pytest.raises(TransactionManagementError):
            prepared("P-1")


def test_values_other_than_uuids_and_strings_are_refused(tenant):
    prepared = Prepared(lambda tenant_id, days: Engagement.objects.filter(paused_days=days), scoped=True)
    with tenant_scope(tenant), pytest.raises(TypeError, match="UUIDs and strings"):
        prepared(3.0)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="other databases evaluate the queryset")
def test_a_value_the_query_rewrites_is_refused(tenant):
    prepared = Prepared(lambda tenant_id, text: Engagement.objects.filter(next_step__contains=text), scoped=True)
    with tenant_scope(tenant), pytest.raises(ValueError, match="parameter of its own"):
        prepared("kick")  # sent as '%kick%'


@pytest.mark.django_db(transaction=True)
def test_every_thread_runs_it_on_its_own_connection(tenant, two_purchases):
    prepared = Prepared(_by_purchase, scoped=True)

    def find():
        with tenant_scope(tenant):
            return [e.purchase.external_id for e in prepared("P-1")]

    assert run_concurrently(find, times=3) == [["P-1"]] * 3


def test_the_event_intake_finds_the_purchase_of_the_active_tenant_only(tenant, other_tenant, two_purchases):
    with tenant_scope(tenant), transaction.atomic():
        assert intake._locked_engagement("P-1").purchase.external_id == "P-1"
        with pytest.raises(Missing):
            intake._locked_engagement("P-2")
    with pytest.raises(ScopeError):
        intake._locked_engagement("P-1")
