"""Owner rules: a purchase without an owner is given one by the first matching rule, by every way in (a
page, a single API call, a batch, the rules applied now), fairly under concurrent purchases, and admins
keep the rules on Settings → Assignment."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement import assignment
from engagement.batch import batch_ingest
from engagement.models import AssignmentRule, Engagement, Note
from engagement.services import purchase_record
from tenants.actors import Actor
from tenants.scoping import tenant_scope
from tests.conftest import run_concurrently
from tests.factories import CustomerFactory, make_offering
from tests.web.conftest import buy
from tests.web.test_pages import text

PAGE = "settings/assignment/"


def _rule(world, roles, method="round_robin", offering=None, segment=""):
    members = [world.members[role] for role in roles]
    with tenant_scope(world.tenant):
        return assignment.rule_add(tenant=world.tenant, actor=Actor.system("tests"), offering=offering,
                                   segment=segment, method=method, members=members)  # fmt: skip


def _owners(world, refs):
    with tenant_scope(world.tenant):
        rows = Engagement.objects.filter(purchase__external_id__in=refs).select_related("owner__user")
        return {e.purchase.external_id: e.owner.user.email if e.owner else None for e in rows}


def _buy_unowned(world, ref, segment="smb", offering=None):
    with tenant_scope(world.tenant):
        return buy(world.tenant, offering or world.offering, Actor.system("tests"), ref=ref, segment=segment)


def test_round_robin_takes_the_members_in_turn_and_the_timeline_says_which_rule(acme):
    _rule(acme, ["owner", "service"])
    for n in range(4):
        _buy_unowned(acme, f"rr-{n}")
    owners = _owners(acme, [f"rr-{n}" for n in range(4)])
    assert [owners[f"rr-{n}"] for n in range(4)] == ["owner@acme.test", "service@acme.test"] * 2
    with tenant_scope(acme.tenant):
        note = Note.objects.get(engagement__purchase__external_id="rr-0")
    assert note.author_label == "Assignment rule"
    assert note.body == "Owner: owner@acme.test, by rule 1 (any offering, any segment, round robin)."


def test_the_first_matching_rule_wins_and_a_purchase_no_rule_matches_stays_unowned(acme):
    with tenant_scope(acme.tenant):
        training = make_offering(acme.tenant, key="training")
    _rule(acme, ["sales"], offering=acme.offering, segment="enterprise")
    _rule(acme, ["service"], segment="smb")
    _buy_unowned(acme, "ent", segment="enterprise")
    _buy_unowned(acme, "smb", segment="smb")
    _buy_unowned(acme, "other", segment="consumer")
    _buy_unowned(acme, "ent-training", segment="enterprise", offering=training)
    assert _owners(acme, ["ent", "smb", "other", "ent-training"]) == {
        "ent": "sales@acme.test", "smb": "service@acme.test", "other": None, "ent-training": None,
    }  # fmt: skip


def test_fewest_open_gives_it_to_whoever_owns_the_fewest_open_engagements(acme):
    # The world's engagement is owned by owner@acme.test (open); service owns none.
    _rule(acme, ["owner", "service"], method="fewest_open")
    _buy_unowned(acme, "f-1")
    _buy_unowned(acme, "f-2")
    _buy_unowned(acme, "f-3")
    owners = _owners(acme, ["f-1", "f-2", "f-3"])
    assert owners["f-1"] == "service@acme.test"  # 0 open against 1
    assert Counter(owners.values()) == {"service@acme.test": 2, "owner@acme.test": 1}


def test_an_owner_given_is_kept_and_a_deactivated_member_is_skipped(acme):
    _rule(acme, ["owner", "service"])
    with tenant_scope(acme.tenant):
        buy(acme.tenant, acme.offering, Actor.system("tests"), ref="given", owner=acme.members["sales"])
        member = acme.members["owner"]
        member.is_active = False
        member.save(update_fields=["is_active"])
    for n in range(3):
        _buy_unowned(acme, f"d-{n}")
    owners = _owners(acme, ["given", "d-0", "d-1", "d-2"])
    assert owners == {"given": "sales@acme.test", "d-0": "service@acme.test", "d-1": "service@acme.test",
                      "d-2": "service@acme.test"}  # fmt: skip


def test_a_batch_is_assigned_by_the_same_rules_and_a_replay_is_no_conflict(acme):
    _rule(acme, ["owner", "service"])
    at = (timezone.now() - timedelta(days=1)).isoformat()
    customer = {"name": "Batch", "segment": "smb"}
    items = [
        {"kind": "purchase", "data": {"external_id": f"b-{n}", "offering": acme.offering.key, "purchased_at": at,
                                      "customer": {**customer, "external_id": f"bc-{n}"}}}
        for n in range(6)
    ]  # fmt: skip
    with tenant_scope(acme.tenant):
        results = batch_ingest(tenant=acme.tenant, items=items, actor=Actor.system("tests"))
        assert [r["status"] for r in results] == [201] * 6
        assert Note.objects.filter(author_label="Assignment rule").count() == 6
        again = batch_ingest(tenant=acme.tenant, items=items, actor=Actor.system("tests"))
    assert [r["status"] for r in again] == [200] * 6  # the owner the rule gave is not a difference
    assert Counter(_owners(acme, [f"b-{n}" for n in range(6)]).values()) == {
        "owner@acme.test": 3, "service@acme.test": 3
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_round_robin_stays_fair_under_concurrent_purchases(acme):
    _rule(acme, ["owner", "service", "sales"])
    with tenant_scope(acme.tenant):
        customers = [CustomerFactory(tenant=acme.tenant, segment="smb") for _ in range(24)]

    def purchases(offset):
        def work():
            for n in range(offset, 24, 2):
                with tenant_scope(acme.tenant):
                    buy_for(customers[n], f"c-{n}")

        return work

    def buy_for(customer, ref):
        purchase_record(tenant=acme.tenant, external_id=ref, customer=customer, offering=acme.offering,
                        purchased_at=timezone.now() - timedelta(days=1), actor=Actor.system("tests"))  # fmt: skip

    works = iter([purchases(0), purchases(1)])
    run_concurrently(lambda: next(works)(), times=2)
    counts = Counter(_owners(acme, [f"c-{n}" for n in range(24)]).values())
    assert sum(counts.values()) == 24 and None not in counts
    assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_apply_now_gives_the_open_unowned_engagements_an_owner_oldest_first(acme, login):
    for n in range(3):
        _buy_unowned(acme, f"old-{n}")
    _rule(acme, ["service"])
    response = login(acme.members["admin"]).post(acme.path(PAGE + "apply/"), follow=True)
    assert "3 open engagements given an owner by the rules." in text(response)
    assert set(_owners(acme, ["old-0", "old-1", "old-2"]).values()) == {"service@acme.test"}


def test_admins_add_move_and_delete_rules_on_the_page(acme, login):
    client = login(acme.members["admin"])
    body = {"offering": acme.offering.key, "segment": "smb", "method": "fewest_open",
            "members": [str(acme.members["owner"].id), str(acme.members["sales"].id)]}  # fmt: skip
    assert client.post(acme.path(PAGE), body).status_code == 302
    anyone = {"method": "round_robin", "members": [str(acme.members["service"].id)]}
    assert client.post(acme.path(PAGE), anyone).status_code == 302
    with tenant_scope(acme.tenant):
        first, second = AssignmentRule.objects.order_by("position")
    page = text(client.get(acme.path(PAGE)))
    assert "Acme-Software smb Fewest open engagements" in page and "Any Any Round robin" in page

    client.post(acme.path(f"{PAGE}{second.id}/up/"))
    with tenant_scope(acme.tenant):
        assert list(AssignmentRule.objects.order_by("position").values_list("id", flat=True)) == [second.id, first.id]
    client.post(acme.path(f"{PAGE}{first.id}/delete/"))
    with tenant_scope(acme.tenant):
        assert list(AssignmentRule.objects.values_list("id", flat=True)) == [second.id]


@pytest.mark.parametrize(
    ("body", "message"),
    [({"method": "round_robin"}, "Give engagements to: Choose at least one member"),
     ({"method": "round_robin", "members": ["viewer"]}, "Give engagements to: Only active members"),
     ({"method": "alphabetical", "members": ["owner"]}, "method: 'alphabetical' is not one of"),
     ({"method": "round_robin", "segment": "x" * 65, "members": ["owner"]}, "Segment: At most 64 characters.")],
)  # fmt: skip
def test_a_bad_rule_is_refused_saying_what_is_wrong(acme, login, body, message):
    body = {**body, "members": [str(acme.members[role].id) for role in body.get("members", [])]}
    response = login(acme.members["admin"]).post(acme.path(PAGE), body)
    assert response.status_code == 400
    assert message in text(response)
    with tenant_scope(acme.tenant):
        assert not AssignmentRule.objects.exists()


@pytest.mark.parametrize("role", ["owner", "sales", "service", "viewer"])
def test_only_admins_see_or_change_the_rules(acme, login, role):
    rule = _rule(acme, ["owner"])
    client = login(acme.members[role])
    assert client.get(acme.path(PAGE)).status_code == 403
    assert client.post(acme.path(f"{PAGE}{rule.id}/delete/")).status_code == 403
    assert client.post(acme.path(PAGE + "apply/")).status_code == 403
    with tenant_scope(acme.tenant):
        assert AssignmentRule.objects.filter(pk=rule.pk).exists()


def test_another_company_s_rule_is_not_found(acme, charlie, login):
    rule = _rule(acme, ["owner"])
    response = login(charlie.members["admin"]).post(charlie.path(f"{PAGE}{rule.id}/delete/"))
    assert response.status_code == 404
    with tenant_scope(acme.tenant):
        assert AssignmentRule.objects.filter(pk=rule.pk).exists()
