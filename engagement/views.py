"""Pages of the record: the engagement list (and its CSV export), one engagement with its actions,
and the journeys admins design. Reads through engagement.queries, writes through the services."""

import csv
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_POST

from engagement import cleaners, queries, services
from engagement.errors import Conflict, Invalid, Missing
from engagement.filters import apply, filters_or_errors
from engagement.models import EventType, Offering, Status
from tenants.scoping import memberships_of, tenant_scope
from tenants.web import ACTING_ROLES, ADMIN_ONLY, ROW_FIELD, can_act, error_messages, roles, web_actor

# Engagements with nothing due (reached, lost, paused) sort after the ones still under way.
# Status in the order of an engagement's life, not of the alphabet.
LIFECYCLE = Case(
    *(When(status=status, then=Value(rank)) for rank, status in enumerate(Status.values)), output_field=IntegerField()
)
SORTS = {
    "due": (F("next_due_at").asc(nulls_last=True), "pos_at"),
    "-due": (F("next_due_at").desc(nulls_last=True), "-pos_at"),
    "purchased": ("pos_at",),
    "-purchased": ("-pos_at",),
    "customer": ("customer__name", "pos_at"),
    "-customer": ("-customer__name", "-pos_at"),
    "status": (LIFECYCLE.asc(), F("next_due_at").asc(nulls_last=True)),
    "-status": (LIFECYCLE.desc(), F("next_due_at").asc(nulls_last=True)),
    # Least likely to reach PoV by the target first; engagements without a forecast (ended) last.
    "risk": (F("forecast__reach_by_target").asc(nulls_last=True), "pos_at"),
    "-risk": (F("forecast__reach_by_target").desc(nulls_last=True), "-pos_at"),
}
PAGE_SIZE = 50


class CappedPaginator(Paginator):
    """Counts at most CAP rows: an exact COUNT(*) of a large tenant's engagements would cost more than
    the page itself. Past the cap the pager says "10,000+"."""

    CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.CAP + 1].count()

    @property
    def capped(self):
        return self.count > self.CAP


@login_required
def home(request):
    """Send a member to their tenant; someone with several picks one."""
    memberships = list(memberships_of(request.user))
    if len(memberships) == 1:
        return redirect("overview", slug=memberships[0].tenant.slug)
    return render(request, "tenants/choose.html", {"memberships": memberships})


def _listed(request):
    """The engagements the list's query string selects, sorted; plus the filter and its errors."""
    flt, errors = filters_or_errors(request.GET)
    engagements = apply(queries.engagements(), flt, request.tenant)
    search = (request.GET.get("q") or "").strip()[:200].replace("\x00", "")
    if search:
        engagements = engagements.filter(
            Q(customer__name__icontains=search)
            | Q(customer__external_id=search)
            | Q(purchase__external_id=search)
            | Q(customer__email__iexact=search)
        )
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "due"
    return engagements.order_by(*SORTS[sort], "id"), flt, errors, search, sort


@roles(ACTING_ROLES)
def engagement_list(request, slug):
    engagements, flt, errors, search, sort = _listed(request)
    page = CappedPaginator(engagements, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "engagement/list.html",
        {
            "page": page,
            "flt": flt,
            "errors": errors,
            "search": search,
            "sort": sort,
            "query": query.urlencode(),
            "statuses": Status.choices,
            "now": timezone.now(),
            **queries.filter_options(),
        },
    )


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ tab or CR is quoted."""
    if isinstance(value, datetime):
        value = value.isoformat()
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


CSV_COLUMNS = (
    ("purchase", "purchase__external_id"), ("customer", "customer__name"), ("customer_id", "customer__external_id"),
    ("segment", "customer__segment"), ("offering", "offering__key"), ("owner", "owner__user__email"),
    ("sales_rep", "sales_rep__user__email"), ("status", "status"), ("next_step", "next_step"),
    ("next_due_at", "next_due_at"), ("purchased_at", "pos_at"), ("pov_at", "pov_at"),
    ("days_to_value", "days_to_value"), ("lost_at", "lost_at"),
)  # fmt: skip


class _Echo:
    def write(self, value):
        return value


@roles(ACTING_ROLES)
def engagement_export(request, slug):
    engagements, _, errors, *_ = _listed(request)
    if errors:
        # A file of every engagement in place of the filtered ones would pass for what was asked.
        return render(request, "engagement/export_refused.html", {"errors": errors}, status=400)
    tenant = request.tenant
    rows = engagements.values_list(*(field for _, field in CSV_COLUMNS))
    writer = csv.writer(_Echo())

    def lines():
        # Streamed after the view returns, so the rows are read inside the tenant's scope here.
        with tenant_scope(tenant):
            yield writer.writerow([name for name, _ in CSV_COLUMNS])
            for row in rows.iterator(chunk_size=2000):
                yield writer.writerow([spreadsheet_safe(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime(timezone.now(), tenant.tzinfo).strftime("%Y-%m-%d")
    response["Content-Disposition"] = f'attachment; filename="engagements-{tenant.slug}-{stamp}.csv"'
    return response


# A page of the list at most, so one click cannot hand over more than a person looked at.
BULK_LIMIT = PAGE_SIZE


@require_POST
@roles(ACTING_ROLES)
def engagement_bulk_reassign(request, slug):
    """Hand the ticked engagements of the list to one owner (or to nobody): one handoff each, as on an
    engagement's own page."""
    back = request.POST.get("next", "")
    back = back if back.startswith(f"/t/{slug}/engagements/") else reverse("engagements", args=[slug])
    try:
        ids = [queries.uuid_or_404(raw) for raw in request.POST.getlist("engagement")[:BULK_LIMIT]]
        if not ids:
            raise Invalid({"engagement": ["Tick the engagements to hand over first."]})
        owner = queries.member_by_email(request.POST.get("owner") or None, "owner")
        moved = services.engagements_reassign(
            tenant=request.tenant, engagement_ids=ids, owner=owner, actor=web_actor(request),
            note=request.POST.get("note", ""),
        )  # fmt: skip
    except Invalid as exc:
        messages.error(request, "Not reassigned — " + " ".join(error_messages(exc)))
    else:
        to = owner.name if owner else "nobody (unowned)"
        messages.success(request, f"{moved} engagement{'s' if moved != 1 else ''} handed to {to}.")
    return HttpResponseRedirect(back)


# One engagement ------------------------------------------------------------------------------------


def detail_context(request, engagement):
    members, names = queries.responsible_and_names()
    return {
        "engagement": engagement,
        "journey": queries.journey_progress(engagement),
        "timeline": list(reversed(queries.timeline(engagement, include_sources=True))),
        "can_act": can_act(request.member),
        "members": members,
        "names": names,
        "event_types": EventType.choices,
        "now_local": timezone.localtime(timezone.now(), request.tenant.tzinfo).strftime("%Y-%m-%dT%H:%M"),
    }


@roles(ACTING_ROLES)
def engagement_detail(request, slug, engagement_id):
    engagement = queries.engagement_for(engagement_id)
    return render(request, "engagement/detail.html", detail_context(request, engagement))


def local_time(raw, tenant, field="occurred_at"):
    """A datetime-local input read in the tenant's time zone; now when empty."""
    if not raw:
        return timezone.now()
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=tenant.tzinfo)
    except ValueError as exc:
        raise Invalid({field: [f"{raw!r} is not a date and time."]}) from exc


def _int_or_none(raw, field):
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise Invalid({field: [f"{raw!r} is not a whole number."]}) from exc


def _act(request, engagement, action):
    tenant, actor, post = request.tenant, web_actor(request), request.POST
    if action == "note":
        services.note_add(tenant=tenant, engagement=engagement, body=post.get("body", ""), actor=actor)
        return "Note added."
    if action == "reassign":
        owner = queries.member_by_email(post.get("owner") or None, "owner")
        services.engagement_reassign(
            tenant=tenant, engagement=engagement, actor=actor, owner=owner, note=post.get("note", "")
        )
        return "Owner changed; the handoff is on the timeline."
    if action == "criteria":
        criteria = post.get("success_criteria", "").splitlines()  # the form's textarea: one a line
        services.success_criteria_set(tenant=tenant, engagement=engagement, criteria=criteria, actor=actor)
        return "Success criteria saved."
    if action not in EventType.values:
        raise Invalid({"action": [f"{action!r} is not an action."]})
    _refuse_out_of_state(tenant, engagement, action, post)
    services.event_record(
        tenant=tenant, engagement=engagement, type=action, actor=actor,
        occurred_at=local_time(post.get("occurred_at"), tenant),
        milestone=post.get("milestone") or None, score=_int_or_none(post.get("score"), "score"),
        comment=post.get("comment", ""), reason=post.get("reason", ""),
        criteria_met=cleaners.criteria_answered(post, engagement.purchase.success_criteria)
        if action == EventType.SATISFACTION
        else None,
    )  # fmt: skip
    return {
        "milestone": "Milestone recorded.", "satisfaction": "Satisfaction recorded.", "lost": "Marked as lost.",
        "reopened": "Reopened: the engagement is open again.",
        "paused": "Paused: the value clock stops.", "resumed": "Resumed: the value clock runs again.",
    }[action]  # fmt: skip


@require_POST
@roles(ACTING_ROLES)
def engagement_act(request, slug, engagement_id, action):
    engagement = queries.engagement_for(engagement_id)
    if not can_act(request.member):
        raise PermissionDenied
    try:
        done = _act(request, engagement, action)
    except (Invalid, Conflict, Missing) as exc:
        context = {**detail_context(request, engagement), "action_errors": error_messages(exc), "focus": action,
                   "criteria_typed": request.POST.get("success_criteria")}  # fmt: skip
        return render(request, "engagement/detail.html", context, status=200 if request.htmx else 400)
    if request.htmx:  # swap the fresh detail in place, the message beside the controls, focus kept on them
        engagement = queries.engagement_for(engagement.id)
        context = {**detail_context(request, engagement), "done": done, "focus": FOCUS_AFTER.get(action, action)}
        return render(request, "engagement/detail.html", context)
    messages.success(request, done)
    return HttpResponseRedirect(reverse("engagement", args=[slug, engagement.id]))


# What a page offers in each state; a request from an old page or a second tab may ask for more. (The API
# records such events as facts and ignores them, docs/metrics.md; a person is told instead.)
NOT_NOW = {
    "milestone": ({Status.LOST}, "is lost: reopen it first to record a milestone"),
    "satisfaction": ({Status.LOST}, "is lost: reopen it first to record satisfaction"),
    "lost": ({Status.LOST, Status.REACHED}, "cannot be marked lost now (it is {status})"),
    "reopened": (set(Status) - {Status.LOST}, "is not lost"),
    "paused": ({Status.LOST, Status.REACHED, Status.PAUSED}, "cannot be paused now (it is {status})"),
    "resumed": (set(Status) - {Status.PAUSED}, "is not paused"),
}


def _refuse_out_of_state(tenant, engagement, action, post):
    refused, why = NOT_NOW[action]
    if engagement.status in refused:
        status = Status(engagement.status).label.lower()
        raise Invalid({"__all__": [f"{engagement.customer.name}'s engagement {why.format(status=status)}."]})
    if action == "lost" and not post.get("reason", "").strip():
        raise Invalid({"reason": ["Say why the customer was lost."]})
    if action == "milestone":
        reached = engagement.reaches.select_related("milestone").filter(milestone__key=post.get("milestone")).first()
        if reached:
            when = timezone.localtime(reached.reached_at, tenant.tzinfo)
            raise Invalid({"milestone": [f"{reached.milestone.name} was already reached on {when:%-d %b %Y}."]})


# Where focus goes after an in-place action whose own control is gone: pausing shows "Resume" and the other
# way round; a lost engagement has no actions left but its message.
FOCUS_AFTER = {"paused": "resumed", "resumed": "paused", "lost": "reopened", "reopened": "feedback"}


# Journeys (admin) ----------------------------------------------------------------------------------

# A new journey's settings; an existing one shows its own.
JOURNEY_DEFAULTS = {
    "key": "", "name": "", "requires_satisfaction": False, "satisfaction_threshold": 4, "confirm_value": False,
}  # fmt: skip
BLANK_ROWS = [{"key": "", "name": "", "due_day": ""}] * 3


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def journeys(request, slug):
    offerings = Offering.objects.prefetch_related("milestones").order_by("name")
    return render(request, "engagement/journeys.html", {"offerings": offerings})


def _journey_rows(post):
    """The milestone rows filled in, in order and as typed (shown again if refused); an empty row is skipped."""
    rows = []
    for row in zip(post.getlist("m_key"), post.getlist("m_name"), post.getlist("m_due"), strict=False):
        key, name, due = (part.strip() for part in row)
        if key or name or due:
            rows.append({"key": key, "name": name, "due_day": due})
    return rows


def _with_due_days(rows):
    """The rows with whole due days; a bad one is named as the form numbers its row."""
    return [
        {**row, "due_day": _int_or_none(row["due_day"], f"milestones.{i}.due_day") or 0} for i, row in enumerate(rows)
    ]


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def journey_edit(request, slug, key=None):
    offering = queries.offering_for(key) if key else None
    errors, bad_rows = [], set()
    if request.method == "POST":
        post = request.POST
        values = {
            "key": key or post.get("key", "").strip(),
            "name": post.get("name", "").strip(),
            "requires_satisfaction": post.get("requires_satisfaction") == "on",
            "satisfaction_threshold": post.get("satisfaction_threshold", "").strip(),
            "confirm_value": post.get("confirm_value") == "on",
        }
        rows = _journey_rows(post)
        try:
            threshold = _int_or_none(values["satisfaction_threshold"], "satisfaction_threshold")
            values["satisfaction_threshold"] = threshold or 4
            notices = queries.notices_for_journey_save(offering, values)
            if notices and post.get("confirmed") != "yes":
                # Nothing saved yet: the same form again, saying what saving sets off, with a button to go ahead.
                context = {"offering": offering, "values": values, "rows": rows + BLANK_ROWS, "notices": notices}
                return render(request, "engagement/journey_form.html", context)
            saved, created = services.offering_save(
                tenant=request.tenant,
                milestones=_with_due_days(rows),
                actor=web_actor(request),
                new=key is None,
                **values,
            )
            messages.success(request, f"Journey {'created' if created else 'saved'}: {saved.name}.")
            return HttpResponseRedirect(reverse("journeys", args=[slug]))
        except (Invalid, Conflict) as exc:
            errors = error_messages(exc)
            bad_rows = {int(row[1]) for field in getattr(exc, "message_dict", {}) if (row := ROW_FIELD.match(field))}
    elif offering is None:
        values, rows = dict(JOURNEY_DEFAULTS), []
    else:
        values = {name: getattr(offering, name) for name in JOURNEY_DEFAULTS}
        rows = [{"key": m.key, "name": m.name, "due_day": m.due_day} for m in offering.milestones.all()]
    context = {"offering": offering, "values": values, "rows": rows + BLANK_ROWS, "errors": errors}
    context["bad_rows"] = bad_rows  # highlighted, as the messages name them ("Milestone 3, due day")
    return render(request, "engagement/journey_form.html", context, status=400 if errors and not request.htmx else 200)
