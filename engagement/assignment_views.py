"""Settings → Assignment (admins): the owner rules in order, adding, moving and deleting one, and giving the
open engagements nobody owns an owner now. Writes go through engagement.assignment."""

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from engagement import assignment, queries
from engagement.errors import Invalid
from engagement.models import OPEN_STATUSES, AssignmentMethod, AssignmentRule, Engagement, Offering
from tenants.scoping import get_or_404
from tenants.web import ADMIN_ONLY, error_messages, roles, web_actor


def _page(request, errors=(), form=None, status=200):
    members, _ = queries.responsible_and_names()
    names = {m.id: m.name for m in members}
    rules = [(rule, [names.get(i, "a member who can no longer own") for i in rule.members])
             for rule in AssignmentRule.objects.select_related("offering").order_by("position")]  # fmt: skip
    context = {
        "rules": rules, "members": members, "errors": errors, "form": form or {},
        "offerings": Offering.objects.order_by("name"), "methods": AssignmentMethod.choices,
        "segments": queries.customer_segments(), "describe": assignment.describe,
        "unowned": Engagement.objects.filter(owner__isnull=True, status__in=OPEN_STATUSES).count(),
    }  # fmt: skip
    return render(request, "engagement/assignment.html", context, status=status)


def _back(slug):
    return HttpResponseRedirect(reverse("assignment", args=[slug]))


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def rules_page(request, slug):
    if request.method != "POST":
        return _page(request)
    post = request.POST
    form = {"offering": post.get("offering", ""), "segment": post.get("segment", ""), "method": post.get("method"),
            "members": post.getlist("members")}  # fmt: skip
    try:
        offering = get_or_404(Offering.objects.all(), key=form["offering"]) if form["offering"] else None
        chosen = [m for m in queries.responsible_and_names()[0] if str(m.id) in form["members"]]
        if len(chosen) != len(set(form["members"])):
            raise Invalid({"members": ["Only active members who can own engagements can be chosen."]})
        assignment.rule_add(tenant=request.tenant, actor=web_actor(request), offering=offering,
                            segment=form["segment"], method=form["method"], members=chosen)  # fmt: skip
    except Invalid as exc:
        return _page(request, error_messages(exc, {"members": "Give engagements to"}), form, status=400)
    messages.success(request, "Rule added: purchases without an owner that it matches are given one from now on.")
    return _back(slug)


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def rule_act(request, slug, rule_id, action):
    rule = get_or_404(AssignmentRule.objects.select_related("offering"), id=rule_id)
    if action == "delete":
        assignment.rule_delete(tenant=request.tenant, actor=web_actor(request), rule=rule)
        messages.success(request, f"Rule {rule.position} deleted.")
    else:
        assignment.rule_move(tenant=request.tenant, actor=web_actor(request), rule=rule, up=action == "up")
    return _back(slug)


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def apply_now(request, slug):
    given = assignment.assign_unowned_now(tenant=request.tenant, actor=web_actor(request))
    if given:
        messages.success(request, f"{given} open engagement{'s' if given != 1 else ''} given an owner by the rules.")
    else:
        messages.info(request, "No rule matched an open engagement nobody owns.")
    return _back(slug)
