"""The cross-tenant matrix: every URL pattern of the project, walked from the resolver, requested with
tenant B's credentials against tenant A's objects (DESIGN.md tenancy rules 3, 4 and 6).

For each pattern and each way in (B's admin on A's slug, B's admin on B's slug with A's ids, B's write API
key, B's admin session on the API, no credentials at all) and every HTTP method:
- a pattern that names one of A's objects answers exactly as it does for an absent object: 404 for the
  methods the view allows (405 for the others), never A's object;
- no answer, whatever its status, carries A's identifying strings (names, emails, external ids, UUIDs,
  A's name and slug) unless the request itself carried them;
- A's rows are the same afterwards (a snapshot of every tenant-owned table, read in A's scope).
Public links (signed confirmation and unsubscribe links, invitations) must not be forgeable into another
tenant, and /admin/ is closed to B's admin, who is not staff.

Completeness: a pattern whose kwargs the matrix cannot fill, or that belongs to no category, fails
`test_every_url_pattern_is_in_the_matrix`, so a new route cannot escape the matrix silently.
"""

import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from itertools import product
from urllib.parse import unquote_plus, urlencode, urlsplit

import pytest
from django.apps import apps
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from engagement.models import Engagement
from notify import confirmations, digests
from tenants import invitations
from tenants.api_keys import api_key_create
from tenants.models import Tenant, User
from tenants.scoping import tenant_scope
from tests.security.conftest import tenant_models, tenant_state

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
NOT_YOURS = (404, 405)  # the answers that say nothing about another tenant's object

# Patterns outside /t/<slug>/, /api/ and /admin/, each with the way the matrix treats it.
PUBLIC = {
    "healthz": "open",
    "login": "open",
    "logout": "open",
    "home": "open",
    "api-schema": "open",
    "api-docs": "open",
    "value-confirmation": "signed link",
    "digest-unsubscribe": "signed link",
    "password_reset_confirm": "invitation link",
    "password_reset": "open",
    "password_reset_done": "open",
    "invitation": "signed link for a signed-in user",
    "connection-receive": "vendor address",
    "connection-receive-call": "vendor address",
}

# Methods whose answer for another tenant's id is not a 404 by design; the answer must still equal the one for
# an absent id, carry none of A's data and leave A as it was.
NOT_A_LOOKUP = {
    (
        "offering-detail",
        "PUT",
    ): "PUT /offerings/{key}/ is an upsert in the caller's own tenant (the API reference at /api/docs/)",
}

WHO = {
    "web": ("B's admin on A's slug", "B's admin on B's slug with A's ids", "anonymous"),
    "api": ("B's admin key", "B's admin session", "B's admin session asking for A", "anonymous"),
    "public": ("B's admin", "anonymous"),
    "admin": ("B's admin", "anonymous"),
}


# The patterns --------------------------------------------------------------------------------------------

NAMED_GROUP = re.compile(r"\(\?P<(\w+)>([^)]*)\)")
CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
ALTERNATIVES = re.compile(r"^[\w-]+(?:\|[\w-]+)+$")


@dataclass(frozen=True)
class Route:
    ident: str  # the route's name (namespaced), or its pattern when it has none
    template: str  # every level's pattern, joined
    namespace: str | None

    @property
    def kwargs(self):
        named = [name for name, _ in NAMED_GROUP.findall(self.template)]
        return tuple(CONVERTER.findall(NAMED_GROUP.sub("", self.template))) + tuple(named)

    @property
    def choices(self):
        """Kwargs whose regex is a plain alternation (an action name): one case per alternative."""
        return {name: body.split("|") for name, body in NAMED_GROUP.findall(self.template) if ALTERNATIVES.match(body)}

    @property
    def category(self):
        if self.namespace == "admin":
            return "admin"
        if self.ident in PUBLIC:
            return "public"
        path = self.template.replace("^", "")
        if path.startswith("t/<slug:slug>/"):
            return "web"
        if path.startswith("api/"):
            return "api"
        return None

    def url(self, values):
        path = NAMED_GROUP.sub(lambda m: str(values[m.group(1)]), self.template)
        path = CONVERTER.sub(lambda m: str(values[m.group(1)]), path)
        return "/" + path.replace("^", "").replace("$", "")


def _walk(patterns, prefix="", namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace)
            continue
        template = prefix + str(entry.pattern)
        name = entry.name and (f"{namespace}:{entry.name}" if namespace else entry.name)
        yield Route(ident=name or f"{namespace or ''}:{template}".lstrip(":"), template=template, namespace=namespace)


ROUTES = list(_walk(get_resolver().url_patterns))


def _variants(route):
    choices = route.choices
    return [dict(zip(choices, combo, strict=True)) for combo in product(*choices.values())] or [{}]


def _cases():
    for route in ROUTES:
        for variant, who in product(_variants(route), WHO.get(route.category, ("unknown",))):
            label = " ".join([route.ident, *variant.values()])
            yield pytest.param(route, variant, who, id=f"{label} | {who}")


# Filling the patterns -------------------------------------------------------------------------------------


def tampered(token):
    """A signed token with its last signature character changed: the signature no longer matches."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _admin_object_id(m, route):
    """The id of one of A's rows of the model an admin URL names (its engagement for view-on-site)."""
    parts = route.template.split("/")
    try:
        model = apps.get_model(parts[1], parts[2])
    except (LookupError, IndexError, ValueError):
        return m.a.engagement.id
    if model is Tenant:
        return m.a.tenant.pk
    if model is User:
        return m.a.members["admin"].user.pk
    with tenant_scope(m.a.tenant):
        if model in tenant_models():
            return model._default_manager.filter(tenant=m.a.tenant).values_list("pk", flat=True).first()
    return 1  # a model without tenant data (groups, sign-in attempts)


def _invitee_uid(m):
    return urlsafe_base64_encode(force_bytes(m.invitee.user.pk))


# kwarg name, or "<route ident>.<kwarg>" where the same name means different objects -> value from A.
FILL = {
    "slug": lambda m, r: m.a.tenant.slug,
    "engagement_id": lambda m, r: m.a.engagement.id,
    "customer_id": lambda m, r: m.customer.id,
    "rule_id": lambda m, r: m.rule.id,
    "import_id": lambda m, r: m.import_run.id,
    "import-detail.pk": lambda m, r: m.import_run.id,
    "import-errors.pk": lambda m, r: m.import_run.id,
    "alert_id": lambda m, r: m.a.alert.id,
    "member_id": lambda m, r: m.a.teammate.id,
    "key_id": lambda m, r: m.a.key.id,
    "endpoint_id": lambda m, r: m.endpoint.id,
    "connection_id": lambda m, r: m.connection.id,
    "connection-detail.pk": lambda m, r: m.connection.id,
    "call": lambda m, r: "track",
    "key": lambda m, r: m.a.offering.key,
    "external_id": lambda m, r: m.customer.external_id,
    "engagement-detail.pk": lambda m, r: m.a.engagement.id,
    "alert-acknowledge.pk": lambda m, r: m.a.alert.id,
    "alert-resolve.pk": lambda m, r: m.a.alert.id,
    "value-confirmation.token": lambda m, r: tampered(confirmations.make_token(m.confirmation, 5)),
    "digest-unsubscribe.token": lambda m, r: tampered(digests.unsubscribe_token(m.a.members["owner"])),
    "password_reset_confirm.uidb64": lambda m, r: _invitee_uid(m),
    "password_reset_confirm.token": lambda m, r: tampered(default_token_generator.make_token(m.invitee.user)),
    "invitation.token": lambda m, r: invitations.token_for(m.a.teammate),  # genuine, but not B's to accept
    "object_id": _admin_object_id,
    "id": lambda m, r: m.a.members["admin"].user.pk,
    "content_type_id": lambda m, r: ContentType.objects.get_for_model(Engagement).pk,
    "url": lambda m, r: "nowhere/",
}


def filler(route, kwarg):
    return FILL.get(f"{route.ident}.{kwarg}") or FILL.get(kwarg)


def unfillable(route):
    return [k for k in route.kwargs if k not in route.choices and filler(route, k) is None]


def object_kwargs(route):
    return [k for k in route.kwargs if k != "slug" and k not in route.choices]


def fill(m, route, variant, slug):
    if unfillable(route):
        pytest.fail(f"{route.ident}: the matrix has no value for {unfillable(route)}; add them to FILL")
    values = {k: filler(route, k)(m, route) for k in object_kwargs(route)}
    return {**values, **variant, "slug": slug}


def absent(value):
    """A value of the same kind that names nothing in any tenant."""
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    return f"absent-{uuid.uuid4().hex[:12]}"


def absent_ids(m, route, values):
    return {k: absent(v) if k in object_kwargs(route) else v for k, v in values.items()}


# Bodies and queries that name A's objects, so a missing check would act on them (keyed by route ident, or
# "<ident> <choice>").
def _ago(**delta):
    return (timezone.now() - timedelta(**delta)).isoformat()


JOURNEY_FORM = {"name": "Taken over", "m_key": ["x1"], "m_name": ["X"], "m_due": ["3"]}

WEB_BODIES = {
    "engagement-act milestone": lambda m: {"milestone": "m2", "occurred_at": ""},
    "engagement-act satisfaction": lambda m: {"score": "1", "comment": "Taken over"},
    "engagement-act lost": lambda m: {"reason": "Taken over"},
    "engagement-act note": lambda m: {"body": "Taken over"},
    "engagement-act reassign": lambda m: {"owner": "", "note": "Taken over"},
    "alert-action assign": lambda m: {"assignee": str(m.a.teammate.id)},
    "journey-edit": lambda m: JOURNEY_FORM,
    "journey-new": lambda m: {**JOURNEY_FORM, "key": m.a.offering.key},
    "member-role": lambda m: {"role": "viewer"},
    "member-invite": lambda m: {"email": "newcomer@charlie.test", "role": "viewer"},
    "key-create": lambda m: {"name": "Second", "scope": "read"},
    "company-update": lambda m: {"name": "Taken over", "time_zone": "UTC", "grace_days": "9", "escalation_days": "9"},
    "digest": lambda m: {"frequency": "off"},
    "webhook-create": lambda m: {"url": "https://hooks.charlie.test/x", "events": ["engagement.lost"]},
    "customer-edit": lambda m: {"name": "Taken over", "attributes": ""},
    "purchase-new": lambda m: {
        "customer_id": m.customer.external_id,
        "customer_name": "Taken over",
        "external_id": m.purchase.external_id,
        "offering": m.a.offering.key,
    },
    "assignment": lambda m: {
        "offering": m.a.offering.key,
        "method": "round_robin",
        "members": [str(m.a.members["owner"].id)],
    },
    "import-start": lambda m: {"map_0": "external_id", "time_zone": "UTC"},
}

# Filters naming A's values: B's lists must match nothing rather than show A's rows.
_FILTERS = lambda m: {  # noqa: E731
    "offering": m.a.offering.key,
    "owner": m.a.members["owner"].user.email,
    "sales_rep": m.a.members["sales"].user.email,
    "segment": m.customer.segment,
}
QUERIES = {
    "overview": _FILTERS,
    "team": _FILTERS,
    "engagements": lambda m: {**_FILTERS(m), "q": m.customer.name},
    "engagements-export": lambda m: {**_FILTERS(m), "q": m.customer.name},
    "alerts": lambda m: {"mine": "1"},
    "customer-list": lambda m: {"search": m.customer.name, "segment": m.customer.segment},
    "engagement-list": _FILTERS,
    "api-metrics-summary": _FILTERS,
    "api-metrics-cohorts": _FILTERS,
    "api-metrics-funnel": _FILTERS,
    "api-metrics-owners": _FILTERS,
    "api-metrics-sales-reps": _FILTERS,
    "api-metrics-trend": lambda m: {"offering": m.a.offering.key, "days": "30"},
}
# Queries that name one of A's objects: the page must answer as for an absent one (404).
OBJECT_QUERIES = {"settings-digests": lambda m: {"member": str(m.a.members["owner"].id)}}


def _event(m):
    return {"type": "lost", "purchase": m.purchase.external_id, "occurred_at": _ago(hours=1), "reason": "Taken over"}


JOURNEY = [{"key": "x1", "name": "X", "due_day": 3}]

API_BODIES = {
    "customer-list": lambda m: m.idempotent_body,
    "offering-list": lambda m: {"key": m.a.offering.key, "name": "Copy", "milestones": JOURNEY},
    "offering-detail": lambda m: {"name": "Taken over", "milestones": JOURNEY},
    "purchase-list": lambda m: {
        "external_id": "CH-P-9",
        "customer": m.customer.external_id,
        "offering": m.a.offering.key,
        "purchased_at": _ago(days=1),
    },
    "event-list": _event,
    "api-batch": lambda m: {"items": [{"kind": "event", "data": _event(m)}]},
    "engagement-detail": lambda m: {"owner": None, "sales_rep": None},
}


# Sending and checking -------------------------------------------------------------------------------------


@dataclass
class Sent:
    label: str
    request_text: str  # everything the request carried: what the answer may legitimately echo
    response: object

    @property
    def status(self):
        return self.response.status_code


def _body_text(response):
    if getattr(response, "streaming", False):
        # Read the stream once and keep it, so the answer can be checked more than once.
        response.streamed = getattr(response, "streamed", None) or b"".join(response.streaming_content)
        return response.streamed.decode("utf-8", errors="replace")
    return response.content.decode("utf-8", errors="replace")


def send(client, method, url, *, body=None, as_json=False, headers=None):
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in (headers or {}).items()}
    call = getattr(client, method.lower())
    if method == "GET":
        payload = ""
        response = call(url, **extra)
    elif as_json:
        payload = json.dumps(body or {})
        response = call(url, payload, content_type="application/json", **extra)
    elif method == "POST":
        payload = urlencode(body or {}, doseq=True)
        response = call(url, body or {}, **extra)
    else:
        payload = urlencode(body or {}, doseq=True)
        response = call(url, payload, content_type="application/x-www-form-urlencoded", **extra)
    _body_text(response)
    carried = [unquote_plus(url), unquote_plus(payload), json.dumps(body or {}), *(headers or {}).values()]
    return Sent(f"{method} {url}", " ".join(carried), response)


def leaked(sent, secrets):
    """A's strings in the answer (body and headers) that the request did not carry itself."""
    answer = _body_text(sent.response) + "\n" + "\n".join(f"{k}: {v}" for k, v in sent.response.items())
    return sorted(s for s in secrets if s in answer and s not in sent.request_text)


def check_no_leak(m, sent):
    assert sent.status < 500, f"{sent.label}: {sent.status} {sent.response.content[:500]!r}"
    found = leaked(sent, m.secrets)
    assert not found, f"{sent.label} answered {sent.status} showing A's {found}"


def check_same_as_absent(route, method, sent, baseline):
    """Another tenant's id must be indistinguishable from an absent one: same status, and a 404 (405 for
    a method the view does not take) unless the method is no lookup at all."""
    assert sent.status == baseline.status, (
        f"{sent.label}: {sent.status} for A's id but {baseline.status} for an absent one"
    )
    if (route.ident, method) not in NOT_A_LOOKUP:
        assert sent.status in NOT_YOURS, f"{sent.label}: {sent.status}, expected 404 (or 405)"


def _signed_in(member):
    member.user.refresh_from_db()  # the session must carry the hash of the stored password
    client = Client()
    client.force_login(member.user)
    return client


def _body(bodies, m, route, variant):
    key = " ".join([route.ident, *variant.values()])
    make = bodies.get(key) or bodies.get(route.ident)
    return make(m) if make else {}


def _with_query(url, query):
    return f"{url}?{urlencode(query)}" if query else url


# The cases, by category -----------------------------------------------------------------------------------


def run_web(m, route, variant, who):
    if who == "anonymous":
        return _web_anonymous(m, route, variant)
    client = _signed_in(m.b.members["admin"])
    body = _body(WEB_BODIES, m, route, variant)
    if who == "B's admin on A's slug":
        url = _with_query(route.url(fill(m, route, variant, m.a.tenant.slug)), _query(m, route))
        for method in METHODS:
            sent = send(client, method, url, body=body)
            assert sent.status == 404, f"{sent.label}: {sent.status}; B's admin is no member of A"
            check_no_leak(m, sent)
        return
    values = fill(m, route, variant, m.b.tenant.slug)
    query, objects = _query(m, route), object_kwargs(route) or route.ident in OBJECT_QUERIES
    statuses = set()
    for method in METHODS:
        sent = send(client, method, _with_query(route.url(values), query), body=body)
        check_no_leak(m, sent)
        statuses.add(sent.status)
        if objects:
            absent_query = {k: str(uuid.uuid4()) for k in query} if route.ident in OBJECT_QUERIES else query
            baseline = send(client, method, _with_query(route.url(absent_ids(m, route, values)), absent_query),
                            body=body)  # fmt: skip
            check_same_as_absent(route, method, sent, baseline)
    # A route that answered 405 to every method would pass vacuously: one method at least must look A's id up.
    assert not objects or 404 in statuses, f"{route.ident}: no method reached the lookup ({sorted(statuses)})"


def _query(m, route):
    make = OBJECT_QUERIES.get(route.ident) or QUERIES.get(route.ident)
    return make(m) if make else {}


def _web_anonymous(m, route, variant):
    url = route.url(fill(m, route, variant, m.a.tenant.slug))
    for method in METHODS:
        sent = send(Client(), method, url, body=_body(WEB_BODIES, m, route, variant))
        assert sent.status == 302, f"{sent.label}: {sent.status}"
        assert sent.response["Location"].startswith("/accounts/login/?next="), sent.response["Location"]
        check_no_leak(m, sent)


def run_api(m, route, variant, who):
    client, headers, query = Client(), {}, _query(m, route)
    if who == "B's admin key":
        headers["Authorization"] = f"Bearer {m.b_raw_key}"
    elif who != "anonymous":
        client = _signed_in(m.b.members["admin"])
        if who == "B's admin session asking for A":
            query = {**query, "tenant": m.a.tenant.slug}
    values = fill(m, route, variant, None)
    url, body = _with_query(route.url(values), query), _body(API_BODIES, m, route, variant)
    for method in METHODS:
        # A's own Idempotency-Key with A's own body must not replay A's stored answer to B.
        idem = {"Idempotency-Key": m.idempotency_key} if method == "POST" else {}
        sent = send(client, method, url, body=body, as_json=True, headers={**headers, **idem})
        check_no_leak(m, sent)
        assert "Idempotent-Replayed" not in sent.response, f"{sent.label} replayed A's stored answer"
        if who == "anonymous":
            assert sent.status in (401, 403, 404), f"{sent.label}: {sent.status} without credentials"
        elif who == "B's admin session asking for A":
            assert sent.status == 404, f"{sent.label}: {sent.status}; B's admin is no member of A"
        elif object_kwargs(route):
            absent_url = _with_query(route.url(absent_ids(m, route, values)), query)
            baseline = send(client, method, absent_url, body=body, as_json=True, headers=headers)
            check_same_as_absent(route, method, sent, baseline)


def run_public(m, route, variant, who):
    client = Client() if who == "anonymous" else _signed_in(m.b.members["admin"])
    url = route.url(fill(m, route, variant, m.a.tenant.slug if "slug" in route.kwargs else None))
    for method in METHODS:
        sent = send(client, method, url, body={"comment": "Taken over", "new_password1": "x", "new_password2": "x"})
        check_no_leak(m, sent)
        if PUBLIC[route.ident] == "signed link":
            assert sent.status in (400, 404, 405), f"{sent.label}: {sent.status} for a tampered signature"
        if PUBLIC[route.ident] == "signed link for a signed-in user":
            to_login = sent.status == 302 and sent.response["Location"].startswith("/accounts/login/")
            assert sent.status in (404, 405) or to_login, f"{sent.label}: {sent.status} for another's invitation"
        if PUBLIC[route.ident] == "vendor address":
            assert sent.status in (401, 404, 405), f"{sent.label}: {sent.status} without A's secret"
        if PUBLIC[route.ident] == "invitation link" and sent.response.context is not None:
            assert sent.response.context.get("validlink") is not True, f"{sent.label}: a tampered token passed"


def run_admin(m, route, variant, who):
    client = Client() if who == "anonymous" else _signed_in(m.b.members["admin"])
    url = route.url(fill(m, route, variant, None))
    for method in ("GET", "POST"):
        sent = send(client, method, url, body={"username": m.a.members["admin"].user.email, "password": "x"})
        check_no_leak(m, sent)
        if route.ident == "admin:login":
            assert sent.status == 200, f"{sent.label}: {sent.status}"
            continue
        assert sent.status == 302, f"{sent.label}: {sent.status}; /admin/ is for staff only"
        target = urlsplit(sent.response["Location"]).path
        assert target in ("/admin/login/", "/admin/"), f"{sent.label} sent B's admin to {target}"


RUN = {"web": run_web, "api": run_api, "public": run_public, "admin": run_admin}


# The tests ------------------------------------------------------------------------------------------------


def test_every_url_pattern_is_in_the_matrix():
    """A new pattern must get a category and a value for each kwarg here before it can ship."""
    problems = [f"{r.ident}: no category (add it to PUBLIC or mount it under /t/<slug>/, /api/ or /admin/)"
                for r in ROUTES if r.category is None]  # fmt: skip
    problems += [f"{r.ident}: no value for {unfillable(r)} (add them to FILL)" for r in ROUTES if unfillable(r)]
    assert not problems, "\n".join(problems)
    idents = [r.ident for r in ROUTES]
    assert len(idents) == len(set(idents)), "two patterns share a name: case ids would be ambiguous"


def test_the_matrix_builds_urls_that_reach_their_own_pattern():
    """A URL built from a template must resolve back to that pattern, or the matrix tests another view."""
    values = dict.fromkeys(("slug", "key", "external_id", "token", "uidb64", "url", "call"), "probe")
    values.update(dict.fromkeys(("engagement_id", "alert_id", "member_id", "key_id", "endpoint_id", "pk",
                                 "object_id", "customer_id", "rule_id", "import_id", "connection_id"),
                                str(uuid.uuid4())))  # fmt: skip
    values.update({"id": "7", "content_type_id": "7"})
    wrong = []
    for route in ROUTES:
        for variant in _variants(route):
            url = route.url({**values, **variant})
            match = resolve(urlsplit(url).path)
            if match.route.replace("^", "") != route.template.replace("^", ""):
                wrong.append(f"{route.ident}: {url} -> {match.view_name or match.route}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("route", "variant", "who"), list(_cases()))
def test_tenant_b_never_reaches_tenant_a(matrix, route, variant, who):
    before = tenant_state(matrix.a.tenant)

    if route.category not in RUN:
        pytest.fail(f"{route.ident}: no category; add it to PUBLIC or mount it under /t/<slug>/, /api/ or /admin/")
    RUN[route.category](matrix, route, variant, who)

    after = tenant_state(matrix.a.tenant)
    if PUBLIC.get(route.ident) == "vendor address":
        # A connection's log lists what it refused, which is what the log is for: only rejected lines may be new.
        new = set(after.pop("intake.Arrival")) - set(before.pop("intake.Arrival"))
        assert all("'rejected'" in line for line in new), new
    assert after == before, "a request of B's changed A's rows"


def test_the_leak_detector_sees_a_data_on_a_pages(matrix, actor):
    """The detector is only worth its silence if it speaks when A's data is shown: A's own admin sees A's
    customer, the engagement's note and A's webhook on A's pages."""
    client = _signed_in(matrix.a.members["admin"])
    pages = [f"engagements/{matrix.purchase.engagement.id}/", f"engagements/{matrix.a.engagement.id}/",
             f"settings/webhooks/{matrix.endpoint.id}/", "settings/"]  # fmt: skip
    for page in pages:
        sent = send(client, "GET", f"/t/{matrix.a.tenant.slug}/{page}")
        assert sent.status == 200, sent.label
        assert leaked(sent, matrix.secrets - {matrix.a.tenant.slug}), f"{sent.label}: the detector saw nothing"
    sent = send(Client(), "GET", f"/api/v1/customers/{matrix.customer.external_id}/",
                headers={"Authorization": f"Bearer {_raw_key(matrix.a, actor)}"})  # fmt: skip
    assert "grace@acme-buyer.test" in leaked(sent, matrix.secrets), sent.response.content


def _raw_key(world, actor):
    with tenant_scope(world.tenant):
        return api_key_create(tenant=world.tenant, name="Detector", scope="read", actor=actor)[1]


def test_genuine_links_of_a_work_so_the_tampered_ones_are_refused_for_their_signature(matrix):
    """The matrix sends tampered tokens; the same tokens untampered open A's pages (status 200), so a 400
    there is the signature check and not a broken route."""
    confirmation_url = f"/value/{confirmations.make_token(matrix.confirmation, 5)}/"
    unsubscribe_url = f"/digests/unsubscribe/{digests.unsubscribe_token(matrix.a.members['owner'])}/"
    for url in (confirmation_url, unsubscribe_url):
        assert Client().head(url).status_code == 200, url


# Signed links forged into another tenant ---------------------------------------------------------------
# SECRET_KEY signs the tokens; these forge what only a leaked key could: a valid signature around B's tenant
# id and A's object id. The token's tenant decides the scope, so A's object must stay out of reach.


def test_a_confirmation_token_naming_b_cannot_answer_a_confirmation(matrix):
    payload = {"t": str(matrix.b.tenant.pk), "c": str(matrix.confirmation.pk), "s": 1}
    url = f"/value/{signing.dumps(payload, salt=confirmations.TOKEN_SALT)}/"
    before = tenant_state(matrix.a.tenant)

    for method in ("GET", "POST"):
        sent = send(Client(), method, url, body={"comment": "Taken over"})
        assert sent.status == 404, sent.label
        check_no_leak(matrix, sent)

    assert tenant_state(matrix.a.tenant) == before


def test_an_unsubscribe_token_naming_b_cannot_unsubscribe_a_member(matrix):
    payload = {"tenant": str(matrix.b.tenant.pk), "member": str(matrix.a.members["owner"].pk)}
    url = f"/digests/unsubscribe/{signing.dumps(payload, salt=digests.UNSUBSCRIBE_SALT)}/"
    before = tenant_state(matrix.a.tenant)

    for method in ("GET", "POST"):
        sent = send(Client(), method, url)
        assert sent.status == 400, sent.label
        check_no_leak(matrix, sent)

    assert tenant_state(matrix.a.tenant) == before


def test_a_token_signed_for_another_purpose_is_refused(matrix):
    """An unsubscribe token of A's member is no confirmation token, and the other way round (the salts)."""
    unsubscribe = digests.unsubscribe_token(matrix.a.members["owner"])
    confirmation = confirmations.make_token(matrix.confirmation, 5)
    for url in (f"/value/{unsubscribe}/", f"/digests/unsubscribe/{confirmation}/"):
        sent = send(Client(), "GET", url)
        assert sent.status == 400, sent.label
        check_no_leak(matrix, sent)
