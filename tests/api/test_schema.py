"""OpenAPI 3 at /api/schema/, offline docs at /api/docs/, and the browsable API for signed-in members."""

import re

import pytest
import yaml
from django.test import Client

from tenants.services import member_add

PATHS = {
    "/api/v1/customers/": {"get", "post"},
    "/api/v1/customers/{external_id}/": {"get"},
    "/api/v1/offerings/": {"get", "post"},
    "/api/v1/offerings/{key}/": {"get", "put"},
    "/api/v1/purchases/": {"post"},
    "/api/v1/events/": {"post"},
    "/api/v1/batch/": {"post"},
    "/api/v1/engagements/": {"get"},
    "/api/v1/engagements/{id}/": {"get", "patch"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def static_without_manifest(settings):
    # Pages render {% static %}; the manifest storage of DEBUG-off needs collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="module")
def schema():
    # Generated once: the schema view is public and reads no rows.
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    return yaml.safe_load(response.content)


def test_schema_is_openapi_3_listing_every_path(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "PoV API"
    for path, methods in PATHS.items():
        assert path in schema["paths"], path
        assert set(schema["paths"][path]) & HTTP_METHODS == methods, path
    assert all(p.startswith(("/api/v1/", "/api/schema/")) for p in schema["paths"])


def test_schema_as_json(db):
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert set(PATHS) <= set(response.json()["paths"])


def test_schema_documents_the_engagement_filters_and_bearer_auth(schema):
    parameters = {p["name"] for p in schema["paths"]["/api/v1/engagements/"]["get"]["parameters"]}
    assert {"status", "offering", "owner", "sales_rep", "segment", "purchased_from", "purchased_to"} <= parameters
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values()), schemes


def test_schema_documents_the_status_codes_of_purchases(schema):
    assert {"200", "201", "409"} <= set(schema["paths"]["/api/v1/purchases/"]["post"]["responses"])


def test_docs_are_html_with_only_local_assets(db, static_without_manifest):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html, flags=re.IGNORECASE)
    sources = [m for tag in tags for m in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", tag)]
    assert sources, html[:2000]
    external = [s for s in sources if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", s, flags=re.IGNORECASE)]
    assert external == []
    # The start-up script comes from the page's own view, so the page needs no inline code (CSP).
    assert all(s.startswith(("/static/", "/api/docs/?script=")) for s in sources), sources
    assert "/api/schema/" in Client().get("/api/docs/?script=").content.decode()
    assert not re.search(r"https?://(?!testserver)[^\s\"'<>]+\.(?:js|css)\b", html)


def test_docs_assets_exist(db, static_without_manifest):
    html = Client().get("/api/docs/").content.decode()
    sources = re.findall(r"""<(?:script|link)\b[^>]*(?:src|href)\s*=\s*["'](/static/[^"']+)["']""", html)
    from django.contrib.staticfiles import finders

    for source in sources:
        path = source.removeprefix("/static/").split("?")[0]
        assert finders.find(path), source


# The browsable API: a signed-in member, the tenant from ?tenant= ---------------------------------------


@pytest.fixture
def acme_member(acme):
    return member_add(tenant=acme, email="owner@acme.test", role="owner")[0]


@pytest.fixture
def charlie_member(charlie):
    return member_add(tenant=charlie, email="owner@charlie.test", role="owner")[0]


@pytest.mark.parametrize(
    ("path", "shows"),
    [
        ("engagements/", "P-1"),
        ("customers/", "C-1"),
        ("offerings/", "software"),
        ("customers/C-1/", "Ada"),
        ("offerings/software/", "kickoff"),
    ],
)
def test_member_browses_the_api_as_html(acme_member, acme_purchase, static_without_manifest, path, shows):
    client = Client(raise_request_exception=False)
    client.force_login(acme_member.user)
    response = client.get(f"/api/v1/{path}", {"tenant": "acme"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert shows in response.content.decode()


def test_member_browses_an_engagement_as_html(acme_member, acme_purchase, static_without_manifest):
    client = Client()
    client.force_login(acme_member.user)
    response = client.get(f"/api/v1/engagements/{acme_purchase.engagement.id}/?tenant=acme", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "kickoff" in response.content.decode()


def test_signed_in_member_reads_json(acme_member, acme_purchase):
    client = Client()
    client.force_login(acme_member.user)
    response = client.get("/api/v1/engagements/", {"tenant": "acme"})
    assert response.status_code == 200
    assert [e["purchase"]["external_id"] for e in response.json()["results"]] == ["P-1"]


def test_member_of_another_tenant_gets_404(charlie_member, acme_purchase, static_without_manifest):
    client = Client()
    client.force_login(charlie_member.user)
    for accept in ("text/html", "application/json"):
        response = client.get("/api/v1/engagements/", {"tenant": "acme"}, HTTP_ACCEPT=accept)
        assert response.status_code == 404, accept
    assert b"P-1" not in response.content
    assert response.json()["error"]["code"] == "not_found"
    detail = client.get(f"/api/v1/engagements/{acme_purchase.engagement.id}/", {"tenant": "acme"})
    assert detail.status_code == 404
    # With their own tenant they see their own (empty) list.
    assert client.get("/api/v1/engagements/", {"tenant": "charlie"}).json()["results"] == []


def test_viewer_reads_but_cannot_write(acme, acme_purchase):
    viewer = member_add(tenant=acme, email="viewer@acme.test", role="viewer")[0]
    client = Client()
    client.force_login(viewer.user)
    assert client.get("/api/v1/customers/", {"tenant": "acme"}).status_code == 200
    response = client.post(
        "/api/v1/customers/?tenant=acme", data={"external_id": "C-2", "name": "B"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_signed_out_browser_gets_401(db):
    assert Client().get("/api/v1/engagements/", HTTP_ACCEPT="text/html").status_code == 401
