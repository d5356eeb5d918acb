"""Dashboards of what Celery computes: the overview, the team scoreboard, and the alert queue.

Reads come from the stored rollups (metrics.queries) and stay a fixed number of queries however
many engagements the tenant has; writes go through metrics.alerts.
"""

import uuid

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from engagement import queries as engagement_queries
from engagement.errors import Invalid
from engagement.filters import filters_or_errors
from engagement.models import Offering
from metrics import charts, queries, rollups
from metrics.alerts import LIVE, alert_acknowledge, alert_assign, alert_resolve
from metrics.compute import BACKLOG_AGES
from metrics.definitions import DEFINITIONS
from metrics.models import Alert, AlertState, BacktestRun
from tenants.models import ACTING_ROLES, ADMIN_ONLY, Member, Role
from tenants.scoping import get_or_404
from tenants.web import error_messages, roles, web_actor


def _filters(request):
    return filters_or_errors(request.GET, for_lists=False)


def filter_options():
    """Filter choices, the segments from the rollups (a handful of rows, not a scan of customers)."""
    segment_rows = rollups.current_rows("segment")
    segments = None if segment_rows is None else [row.key for row in segment_rows if row.key]
    return engagement_queries.filter_options(segments=segments)


def _funnel_offering(flt, offerings):
    key = flt.offering or (offerings[0][0] if offerings else "")
    return Offering.objects.prefetch_related("milestones").filter(key=key).first() if key else None


def _percent(share):
    return None if share is None else round(share * 100)


def _by_target(summary):
    """The share reaching PoV by the target day and its interval, in whole percents (None before any purchase)."""
    by_target = summary["reached_by_target"]
    if not by_target or by_target["share"] is None:
        return None
    return {name: _percent(by_target[name]) for name in ("share", "low", "high")}


def _backlog_rows(backlog):
    """The value backlog as table rows: one per age band, a cell per currency."""
    return [
        {"label": name, "cells": [block["ages"][index] for block in backlog]}
        for index, (_, name) in enumerate(BACKLOG_AGES)
    ]


def _setup_steps(request):
    """The set-up checklist an admin sees on the overview until every step is done or it is dismissed."""
    if request.member.role not in ADMIN_ONLY or request.tenant.setup_dismissed_at:
        return None
    steps = engagement_queries.setup_steps(request.tenant)
    return None if all(step.done for step in steps) else steps


@roles(ACTING_ROLES)
def overview(request, slug):
    tenant = request.tenant
    flt, errors = _filters(request)
    summary, cohorts = queries.summary_and_cohorts(flt, tenant)
    cohorts = cohorts["results"]
    options = filter_options()
    offering = _funnel_offering(flt, options["offerings"])
    funnel = queries.funnel(flt, tenant, offering) if offering else None
    group = queries.stored_group(flt)
    trend = queries.trend(flt, 90)["results"] if group else []
    target = summary["target_days"]
    reached_curve = summary["reached_curve"]
    context = {
        "setup": _setup_steps(request),
        "flt": flt,
        "errors": errors,
        "summary": summary,
        "funnel": funnel,
        "funnel_offering": offering,
        "trend": trend,
        "by_target": _by_target(summary),
        # Where the PoV curve stands on its last day: what "not yet" is short of.
        "reached_so_far": _percent(reached_curve[-1]["share"]) if reached_curve else 0,
        "backlog_rows": _backlog_rows(summary["value_backlog"]),
        "outcomes_svg": charts.outcomes_chart(
            reached_curve,
            summary["lost_curve"],
            chart_id="outcomes",
            purchases=summary["purchases"],
            target_days=target,
            p50=summary["days_to_value_p50"],
        ),
        "histogram_svg": charts.histogram_chart(summary["histogram"], chart_id="dtv", target_days=target),
        "cohort_svg": charts.cohort_chart(cohorts, chart_id="cohorts"),
        "funnel_svg": charts.funnel_chart(funnel, chart_id="funnel") if funnel else "",
        "trend_svg": charts.sparkline([p["pov_rate"] for p in trend], chart_id="trend", label="PoV rate by day")
        if len(trend) > 1
        else "",
        **options,
    }
    return render(request, "metrics/overview.html", context)


@roles(ACTING_ROLES)
def team(request, slug):
    tenant = request.tenant
    flt, errors = _filters(request)
    names = {m.user.email: m for m in Member.objects.select_related("user")}
    boards = {}
    for by in ("owner", "sales_rep"):
        rows = queries.scoreboard(flt, tenant, by)
        boards[by] = {
            "rows": [{**row, "member": names.get(row[by]), "by_target": _by_target(row)} for row in rows["results"]],
            "computed_at": rows["computed_at"],
        }
    backtest = BacktestRun.objects.first() if request.member.role == Role.ADMIN else None
    criteria = queries.criteria_met(flt, tenant)
    context = {"flt": flt, "errors": errors, "boards": boards, "criteria": criteria, "backtest": backtest,
               **filter_options()}  # fmt: skip
    return render(request, "metrics/team.html", context)


@roles(ACTING_ROLES)
def metrics_help(request, slug):
    return render(request, "metrics/help.html", {"definitions": DEFINITIONS})


ALERT_VIEWS = {"live": LIVE, "open": (AlertState.OPEN,), "acknowledged": (AlertState.ACKNOWLEDGED,)}


@roles(ACTING_ROLES)
def alerts(request, slug):
    state = request.GET.get("state") if request.GET.get("state") in ALERT_VIEWS else "live"
    mine = request.GET.get("mine") == "1"
    queue = queries.alert_queue(ALERT_VIEWS[state], assignee=request.member if mine else None)
    page = Paginator(queue, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "metrics/alerts.html",
        {"page": page, "state": state, "mine": mine, "members": engagement_queries.responsible_members()},
    )


@require_POST
@roles(ACTING_ROLES)
def alert_action(request, slug, alert_id, action):
    alert = get_or_404(Alert.objects.all(), id=alert_id)
    actor = web_actor(request)
    done, error = "", ""
    try:
        assignee = _assignee(request)
        if action == "acknowledge":
            alert = alert_acknowledge(tenant=request.tenant, alert=alert, actor=actor, assignee=assignee)
            done = "Acknowledged."
        elif action == "assign":
            alert = alert_assign(tenant=request.tenant, alert=alert, actor=actor, assignee=assignee)
            done = "Assigned."
        else:
            alert = alert_resolve(tenant=request.tenant, alert=alert, actor=actor)
            done = "Resolved."
    except Invalid as exc:
        error = " ".join(error_messages(exc))
    back = request.POST.get("next") or reverse("alerts", args=[slug])
    if request.htmx:  # the row swapped in place says what happened, in its live region
        alert = queries.alert_queue(ALERT_VIEWS["live"] + (AlertState.RESOLVED,)).get(pk=alert.pk)
        members = engagement_queries.responsible_members()
        context = {"alert": alert, "members": members, "done": done, "error": error, "focus": action}
        return render(request, "metrics/_alert_row.html", context)
    if error:
        messages.error(request, error)
    return HttpResponseRedirect(back if back.startswith("/t/") else reverse("alerts", args=[slug]))


def _assignee(request):
    raw = request.POST.get("assignee", "")
    if not raw:  # the menu's "Me"
        return request.member
    member = Member.objects.select_related("user").filter(id=raw).first() if _is_uuid(raw) else None
    if member is None:  # another company's member is not in this scope either
        raise Invalid({"assignee": ["That person is not a member of this company."]})
    return member


def _is_uuid(value):
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False
