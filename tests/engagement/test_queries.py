"""Reads of the record that take a shortcut on PostgreSQL give what the plain query gives."""

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
