"""Owner rules: every purchase that arrives without an owner (a page, the API, a batch, an import) is given one
in the same transaction, by the first matching rule (docs/metrics.md has no part in it: ownership is not a
derived field). Round robin keeps its place on the rule; fewest open counts each member's open engagements.
Only active members whose role acts are given engagements. The rules' rows are locked while choosing, so
concurrent purchases take turns and round robin stays fair."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count

from engagement.errors import Invalid
from engagement.models import (
    OPEN_STATUSES,
    AssignmentMethod,
    AssignmentRule,
    Customer,
    Engagement,
    Note,
    NoteKind,
    Offering,
)
from tenants.actors import Actor, audit
from tenants.models import ACTING_ROLES, Member, Tenant

AUTHOR = "Assignment rule"


@dataclass
class Choice:
    engagement: Any  # an Engagement, or a batch's NewEngagement
    rule: AssignmentRule
    owner: Member


def describe(rule: AssignmentRule) -> str:
    """'Credit card, segment consumer, round robin' as the settings page and the timeline say it."""
    what = [rule.offering.name if rule.offering_id else "any offering",
            f"segment {rule.segment}" if rule.segment else "any segment"]  # fmt: skip
    return f"{', '.join(what)}, {rule.get_method_display().lower()}"


def assign(tenant: Tenant, engagements: Sequence[Any]) -> list[Choice]:
    """Give each unowned engagement (saved or about to be) the owner its first matching rule picks, in the
    caller's transaction. Sets `owner` on the engagements; returns what was chosen, for `record`."""
    unowned = [e for e in engagements if e.owner_id is None]
    if not unowned:
        return []
    rules = list(AssignmentRule.objects.select_for_update(of=("self",)).select_related("offering").order_by("position"))
    if not rules:
        return []
    segments = dict(Customer.objects.filter(id__in={e.customer_id for e in unowned}).values_list("id", "segment"))
    members = _eligible(rules)
    open_counts = _open_counts(rules, members)
    choices = []
    for engagement in unowned:
        segment = segments.get(engagement.customer_id) or ""
        for rule in rules:
            if (rule.offering_id in (None, engagement.offering_id) and rule.segment in ("", segment)
                    and (owner := _pick(rule, members, open_counts))):  # fmt: skip
                engagement.owner, engagement.owner_id = owner, owner.pk  # the id too on a batch's NewEngagement
                choices.append(Choice(engagement, rule, owner))
                break
    AssignmentRule.objects.bulk_update(rules, ["last_assigned"])
    return choices


def _eligible(rules: list[AssignmentRule]) -> dict:
    """Each rule's members who may own, in a stable order: {rule id: [Member, ...]}."""
    ids = {member_id for rule in rules for member_id in rule.members}
    found = Member.objects.filter(id__in=ids, is_active=True, role__in=ACTING_ROLES).select_related("user")
    by_id = {member.id: member for member in found}
    return {rule.id: sorted((by_id[i] for i in rule.members if i in by_id), key=lambda m: m.user.email)
            for rule in rules}  # fmt: skip


def _open_counts(rules: list[AssignmentRule], members: dict) -> Counter:
    """Open engagements per member of the fewest-open rules (one query), kept up to date while choosing."""
    ids = {m.id for rule in rules if rule.method == AssignmentMethod.FEWEST_OPEN for m in members[rule.id]}
    if not ids:
        return Counter()
    rows = Engagement.objects.filter(owner_id__in=ids, status__in=OPEN_STATUSES).values("owner_id")
    return Counter({row["owner_id"]: row["n"] for row in rows.annotate(n=Count("id")).order_by()})


def _pick(rule: AssignmentRule, members: dict, open_counts: Counter) -> Member | None:
    candidates = members[rule.id]
    if not candidates:
        return None
    if rule.method == AssignmentMethod.FEWEST_OPEN:
        owner = min(candidates, key=lambda m: open_counts[m.id])  # ties: the first by email (stable order)
    else:
        ids = [m.id for m in candidates]
        after = ids.index(rule.last_assigned_id) + 1 if rule.last_assigned_id in ids else 0
        owner = candidates[after % len(candidates)]
        rule.last_assigned = owner
    open_counts[owner.id] += 1
    return owner


def record(tenant: Tenant, choices: list[Choice]) -> None:
    """The timeline line of each choice (saved engagements only): who owns it now, and by which rule."""
    Note.objects.bulk_create(
        Note(tenant=tenant, engagement_id=c.engagement.id, kind=NoteKind.HANDOFF, author_label=AUTHOR,
             body=f"Owner: {c.owner.name}, by rule {c.rule.position} ({describe(c.rule)}).")
        for c in choices
    )  # fmt: skip


def assign_unowned_now(*, tenant: Tenant, actor: Actor) -> int:
    """Apply the rules to every open engagement nobody owns, oldest purchase first; how many got an owner."""
    with transaction.atomic():
        # The rules first, then the engagements: the order every purchase and batch takes them in.
        list(AssignmentRule.objects.select_for_update().values_list("pk", flat=True))
        unowned = list(
            Engagement.objects.select_for_update().filter(owner__isnull=True, status__in=OPEN_STATUSES)
            .order_by("pos_at", "id")
        )  # fmt: skip
        choices = assign(tenant, unowned)
        Engagement.objects.bulk_update([c.engagement for c in choices], ["owner"])
        record(tenant, choices)
        audit(tenant=tenant, actor=actor, action="assignment.applied", target=tenant, assigned=len(choices))
    return len(choices)


# The rules, as admins keep them -----------------------------------------------------------------


def rule_add(
    *, tenant: Tenant, actor: Actor, offering: Offering | None, segment: str, method: str, members: list[Any]
) -> AssignmentRule:
    """A rule after the last; `members` are Member rows of this tenant, each one who may own."""
    segment = (segment or "").strip()
    if len(segment) > 64:
        raise Invalid({"segment": ["At most 64 characters."]})
    if method not in AssignmentMethod.values:
        raise Invalid({"method": [f"{method!r} is not one of: {', '.join(AssignmentMethod.values)}."]})
    if not members:
        raise Invalid({"members": ["Choose at least one member to give engagements to."]})
    refused = [m.name for m in members if not m.is_active or m.role not in ACTING_ROLES]
    if refused:
        raise Invalid({"members": [f"{', '.join(refused)} cannot own engagements (viewers and deactivated members)."]})
    with transaction.atomic():
        last = AssignmentRule.objects.select_for_update().order_by("-position").first()
        rule = AssignmentRule.objects.create(
            tenant=tenant, position=(last.position + 1) if last else 1, offering=offering, segment=segment,
            method=method, members=[m.id for m in members],
        )  # fmt: skip
        audit(tenant=tenant, actor=actor, action="assignment.rule_added", target=rule, rule=describe(rule))
    return rule


def rule_move(*, tenant: Tenant, actor: Actor, rule: AssignmentRule, up: bool) -> None:
    """Swap the rule with the one before (up) or after it."""
    with transaction.atomic():
        rules = list(AssignmentRule.objects.select_for_update().order_by("position"))
        at = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
        other = at - 1 if up else at + 1
        if 0 <= other < len(rules):
            rules[at].position, rules[other].position = rules[other].position, rules[at].position
            AssignmentRule.objects.bulk_update([rules[at], rules[other]], ["position"])
            audit(tenant=tenant, actor=actor, action="assignment.rule_moved", target=rule, up=up)


def rule_delete(*, tenant: Tenant, actor: Actor, rule: AssignmentRule) -> None:
    with transaction.atomic():
        audit(tenant=tenant, actor=actor, action="assignment.rule_deleted", target=rule, rule=describe(rule))
        rule.delete()
