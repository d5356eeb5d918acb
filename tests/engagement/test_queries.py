"""Reads of the record written as SQL give what the plain query gives, and only inside a tenant's scope."""

import pytest
from django_scopes import ScopeError

from engagement.models import Customer
from engagement.queries import customer_segments
from tenants.scoping import tenant_scope
from tests.factories import CustomerFactory


def test_customer_segments_are_the_tenants_distinct_non_blank_segments_sorted(tenant, other_tenant):
    for segment in ("smb", "enterprise", "", "smb", "mid-market", "enterprise"):
        CustomerFactory(tenant=tenant, segment=segment)
    CustomerFactory(tenant=other_tenant, segment="another-tenants-segment")
    with tenant_scope(tenant):
        assert customer_segments() == ["enterprise", "mid-market", "smb"]
    with tenant_scope(other_tenant):
        assert customer_segments() == ["another-tenants-segment"]


def test_a_tenant_without_segments_has_none(tenant):
    CustomerFactory(tenant=tenant, segment="")
    with tenant_scope(tenant):
        assert customer_segments() == []


def test_the_loose_index_scan_gives_what_distinct_gives(tenant):
    for segment in ("b", "a", "", "c", "a", "b b", "A"):
        CustomerFactory(tenant=tenant, segment=segment)
    with tenant_scope(tenant):
        plain = Customer.objects.exclude(segment="").order_by("segment").values_list("segment", flat=True).distinct()
        assert customer_segments() == list(plain)  # the database's order (its collation) in both


def test_outside_a_tenant_it_fails_closed(db):
    with pytest.raises(ScopeError):
        customer_segments()
