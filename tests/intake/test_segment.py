"""A Segment-compatible source: the official `segment-analytics-python` client pointed at a running PoV, and
Segment's HTTP API limits checked with plain requests."""

import gzip
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from segment.analytics import request as segment_request
from segment.analytics.client import Client as SegmentClient
from segment.analytics.request import APIError

from engagement.models import Customer, Event
from engagement.services import purchase_record
from tenants.scoping import tenant_scope
from tests.intake.conftest import address, log, post, stored

MAPPING = {
    "customer_id": "userId",
    "events": {"Invoice Paid": {"offering": "software", "milestone": "m2"}},
}


@pytest.fixture
def source(connect):
    return connect("segment", MAPPING)


@pytest.fixture
def open_engagement(tenant, offering, actor):
    with tenant_scope(tenant):
        customer = Customer.objects.create(tenant=tenant, external_id="user-42", name="Ada")
        purchase, _ = purchase_record(tenant=tenant, actor=actor, external_id="P-42", customer=customer,
                                      offering=offering, purchased_at=timezone.now() - timedelta(days=3))  # fmt: skip
    return purchase


@pytest.fixture(autouse=True)
def _hang_up():
    """The client keeps its HTTP connection open, and with it the live server's thread and that thread's
    database connection, which would keep the test database from being dropped: hang up after each test."""
    yield
    segment_request._session.close()


def client_for(live_server, connection, write_key=None, **options):
    host = f"{live_server.url}{address(connection)}"
    return SegmentClient(write_key or connection.secret, host=host, sync_mode=True, max_retries=0, **options)


def milestones(tenant):
    with tenant_scope(tenant):
        return list(Event.objects.filter(type="milestone").values_list("milestone__key", "external_id", "source"))


@pytest.mark.django_db(transaction=True)
def test_the_official_client_identifies_and_tracks_a_milestone(live_server, tenant, source, open_engagement):
    client = client_for(live_server, source)

    client.identify("user-42", {"name": "Ada Lovelace", "email": "ada@buyer.test"}, message_id="m-identify")
    client.track("user-42", "Invoice Paid", {"amount": 10}, message_id="m-track-1")
    client.track("user-42", "Page Viewed", message_id="m-page")
    client.flush()

    with tenant_scope(tenant):
        customer = Customer.objects.get(external_id="user-42")
    assert (customer.name, customer.email) == ("Ada Lovelace", "ada@buyer.test")
    assert milestones(tenant) == [("m2", "segment:m-track-1", "segment")]
    lines = log(source)
    assert [line["outcome"] for line in lines] == ["accepted", "accepted", "ignored"]
    assert "not mapped: 'Page Viewed'" in lines[2]["summary"]


@pytest.mark.django_db(transaction=True)
def test_a_message_sent_twice_is_recorded_once(live_server, tenant, source, open_engagement):
    client = client_for(live_server, source, gzip=True)  # the client's compressed uploads are read too

    for _ in range(2):
        client.track("user-42", "Invoice Paid", message_id="m-same")
        client.flush()

    assert milestones(tenant) == [("m2", "segment:m-same", "segment")]


@pytest.mark.django_db(transaction=True)
def test_a_wrong_write_key_is_refused_and_stores_nothing(live_server, tenant, source, open_engagement):
    client = client_for(live_server, source, write_key="not-the-key")

    with pytest.raises(APIError, match="The write key is not this source's"):
        client.track("user-42", "Invoice Paid", message_id="m-wrong")

    assert milestones(tenant) == []
    assert log(source)[0]["outcome"] == "rejected"


def basic(key):
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(event="Invoice Paid", message_id="m-1", **extra):
    return {"type": "track", "userId": "user-42", "event": event, "messageId": message_id, **extra}


@pytest.mark.django_db
def test_a_batch_sums_up_in_one_log_line(tenant, source, open_engagement):
    batch = {"batch": [track(message_id="b-1"), track("Clicked", "b-2"), track("Clicked", "b-3"),
                       {"type": "page", "messageId": "b-4"}]}  # fmt: skip

    response = post(source, json.dumps(batch), basic(source.secret), call="batch")

    assert response.json() == {"success": True}
    [line] = log(source)
    assert line["outcome"] == "accepted"
    assert line["summary"].startswith("4 messages: 1 accepted, 3 ignored")
    assert "not mapped: 'Clicked' ×2" in line["summary"]


@pytest.mark.django_db
def test_the_write_key_may_come_in_the_body(tenant, source, open_engagement):
    response = post(source, json.dumps({**track(), "writeKey": source.secret}), call="track")

    assert response.status_code == 200
    assert len(milestones(tenant)) == 1


@pytest.mark.django_db
def test_a_batch_over_500_kb_is_refused_whole(tenant, source, open_engagement):
    batch = {"batch": [track(message_id=f"big-{i}", properties={"pad": "x" * 20_000}) for i in range(30)]}

    response = post(source, json.dumps(batch), basic(source.secret), call="batch")

    assert response.status_code == 413
    assert response.json()["success"] is False
    assert milestones(tenant) == []


@pytest.mark.django_db
def test_a_gzip_bomb_is_refused_without_unpacking_it_all(tenant, source):
    bomb = gzip.compress(b'{"batch": [' + b" " * (5 * 1024 * 1024) + b"]}")

    response = post(source, bomb, {**basic(source.secret), "Content-Encoding": "gzip"}, call="batch")

    assert response.status_code == 413
    assert log(source)[0]["outcome"] == "rejected"


@pytest.mark.django_db
def test_a_message_over_32_kb_is_rejected_and_the_rest_recorded(tenant, source, open_engagement):
    batch = {"batch": [track(message_id="huge", properties={"pad": "x" * 33_000}), track(message_id="fine")]}

    response = post(source, json.dumps(batch), basic(source.secret), call="batch")

    assert response.status_code == 200
    assert milestones(tenant) == [("m2", "segment:fine", "segment")]
    assert "Over 32 KB" in log(source)[0]["summary"]


@pytest.mark.django_db
def test_a_customer_without_an_open_engagement_is_ignored(tenant, source):
    response = post(source, json.dumps(track(userId="nobody")), basic(source.secret), call="track")

    assert response.status_code == 200
    assert log(source)[0]["outcome"] == "ignored"
    assert stored(tenant)["events"] == []


@pytest.mark.django_db
def test_the_company_trait_can_name_the_customer(tenant, connect, open_engagement):
    source = connect("segment", {**MAPPING, "customer_id": "traits.company"}, name="By company")
    message = track(userId="person-1", context={"traits": {"company": {"id": "user-42", "name": "Ada"}}})

    post(source, json.dumps(message), basic(source.secret), call="track")

    assert milestones(tenant) == [("m2", "segment:m-1", "segment")]


@pytest.mark.django_db
def test_the_calls_pov_does_not_use_are_counted_and_others_not_found(tenant, source):
    page = post(source, json.dumps({"type": "page", "userId": "user-42", "name": "Home"}), basic(source.secret),
                call="page")  # fmt: skip
    unknown = post(source, json.dumps(track()), basic(source.secret), call="nonsense")

    assert (page.status_code, unknown.status_code) == (200, 404)
    [line] = log(source)
    assert (line["outcome"], line["summary"]) == ("ignored", "page calls are not used")
    assert line["vendor_id"].startswith("sha256:")  # no messageId: the message's hash stands in


@pytest.mark.django_db
def test_a_track_without_a_message_id_sent_twice_is_recorded_once(tenant, source, open_engagement):
    message = {k: v for k, v in track().items() if k != "messageId"} | {"timestamp": timezone.now().isoformat()}

    for _ in range(2):
        post(source, json.dumps(message), basic(source.secret), call="track")

    assert len(milestones(tenant)) == 1


@pytest.mark.django_db
def test_identify_by_company_names_the_company_not_the_person(tenant, connect):
    source = connect("segment", {**MAPPING, "customer_id": "traits.company"}, name="By company")
    traits = {"name": "Ada Lovelace", "email": "ada@globex.test", "company": {"id": "globex", "name": "Globex"}}

    post(source, json.dumps({"type": "identify", "userId": "u1", "traits": traits}), basic(source.secret),
         call="identify")  # fmt: skip

    with tenant_scope(tenant):
        customer = Customer.objects.get()
    assert (customer.external_id, customer.name, customer.email) == ("globex", "Globex", "")


@pytest.mark.django_db
def test_a_batch_of_more_than_500_messages_is_refused_whole(tenant, source, open_engagement):
    batch = {"batch": [track(message_id=f"m-{i}") for i in range(501)]}

    response = post(source, json.dumps(batch), basic(source.secret), call="batch")

    assert response.status_code == 413
    assert milestones(tenant) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    ["Basic é", "Basic !!!", "Basic //46", "Bearer x"],
    ids=["not ASCII", "not base64", "not UTF-8 inside", "another scheme"],
)
def test_an_unreadable_write_key_is_refused(tenant, source, authorization):
    response = post(source, json.dumps(track()), {"Authorization": authorization}, call="track")

    assert response.status_code == 401


@pytest.mark.django_db
def test_a_nul_in_a_message_id_is_logged_without_it(tenant, source):
    response = post(source, json.dumps(track(message_id="bad\x00id", event="Unmapped")), basic(source.secret),
                    call="track")  # fmt: skip

    assert response.status_code == 200
    assert log(source)[0]["vendor_id"] == "badid"


@pytest.mark.django_db
def test_a_flood_is_throttled_and_not_logged(tenant, source, settings):
    settings.API_RATE_LIMIT = (2, 60)

    answers = [post(source, json.dumps(track(event="Unmapped")), basic(source.secret), call="track") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) >= 1
    assert len(log(source)) == 2
