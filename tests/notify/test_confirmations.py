"""The customer's confirmation of value: asked once when the PoV milestone is reached, answered with one
click on a signed, expiring link; through a real SMTP server (tests/notify/conftest.py)."""

import base64
import re
import threading
import time
from datetime import timedelta
from html.parser import HTMLParser
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from engagement import outbox
from engagement.models import Engagement, Event, EventType, Note, Status
from engagement.services import event_record, purchase_record, success_criteria_set
from notify import confirmations
from notify.confirmation_tasks import send_confirmations
from notify.models import ValueConfirmation
from tenants.scoping import tenant_scope
from tests.conftest import WorkerProcess, wait_for
from tests.factories import CustomerFactory, MemberFactory, make_offering

SITE = "https://pov.example.test"
BUYER = "buyer@globex.test"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


@pytest.fixture
def sent_requests(monkeypatch):
    """The tenants a send was asked for (the on-commit enqueue itself is pov.enqueue's business)."""
    asked = []
    monkeypatch.setattr(confirmations, "request_send", asked.append)
    return asked


def _offering(tenant, key="insights", name="Data & Insights", confirm_value=True, **kwargs):
    with tenant_scope(tenant):
        offering = make_offering(tenant, key=key, due_days=(2, 7, 14), **kwargs)
        offering.name, offering.confirm_value = name, confirm_value
        offering.save()
        return offering


def _engagement(tenant, offering, actor, *, email=BUYER, external_id="p-1"):
    with tenant_scope(tenant):
        customer = CustomerFactory(tenant=tenant, email=email, name="Globex Buyer", external_id=f"cus-{external_id}")
        purchase, _ = purchase_record(
            tenant=tenant, external_id=external_id, customer=customer, offering=offering,
            purchased_at=timezone.now() - timedelta(days=60), actor=actor,
            owner=MemberFactory(tenant=tenant, user__email=f"owner-{external_id}@{tenant.slug}.test"),
        )  # fmt: skip
        return purchase.engagement


def _reach_pov(tenant, engagement, actor, *, ago=timedelta(hours=1)):
    with tenant_scope(tenant):
        event_record(
            tenant=tenant, engagement=engagement, type=EventType.MILESTONE,
            milestone=engagement.offering.milestones.get(is_pov=True), occurred_at=timezone.now() - ago, actor=actor,
        )  # fmt: skip


def _ask_and_send(tenant, now=None):
    with tenant_scope(tenant):
        asked = confirmations.ask_for_confirmations(tenant=tenant, now=now)
        return asked, confirmations.send_pending(tenant=tenant, now=now)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def _links(message):
    text = message.get_body(("plain",)).get_content()
    parser = _Links()
    parser.feed(message.get_body(("html",)).get_content())
    return re.findall(r"https?://\S+/value/\S+/", text), parser.hrefs


def _path(url):
    return urlsplit(url).path


def _token(url):
    return _path(url).split("/")[2]


def _payload(data, **changes):
    """A token's payload part with `changes`, as signing.dumps encodes it (the signature is not redone)."""
    return base64.urlsafe_b64encode(signing.JSONSerializer().dumps({**data, **changes})).rstrip(b"=").decode()


def _link_for(message, score):
    text_links, _ = _links(message)
    return next(url for url in text_links if confirmations.read_token(_token(url)).score == score)


@pytest.fixture
def reached(tenant, actor, smtp):
    """Acme's engagement whose PoV milestone was just reached, and the one email it produced."""
    engagement = _engagement(tenant, _offering(tenant), actor)
    _reach_pov(tenant, engagement, actor)
    _ask_and_send(tenant)
    assert len(smtp.messages) == 1
    return engagement, smtp.messages[0]


def _satisfaction_events(tenant, engagement):
    with tenant_scope(tenant):
        return list(Event.objects.filter(engagement=engagement, type=EventType.SATISFACTION))


# The email ---------------------------------------------------------------------------------------------


def test_the_customer_gets_five_one_click_links_when_pov_is_reached(reached, tenant, settings):
    engagement, message = reached
    assert message["Subject"] == "Did Data & Insights from Acme give you the value you expected?"
    assert message["From"] == settings.DEFAULT_FROM_EMAIL
    assert message.envelope_recipients == [BUYER]
    text_links, html_links = _links(message)
    assert len(text_links) == 5 and sorted(html_links) == sorted(text_links)
    assert all(url.startswith(f"{SITE}/value/") for url in text_links)
    answers = [confirmations.read_token(_token(url)) for url in text_links]
    assert sorted(a.score for a in answers) == [1, 2, 3, 4, 5]
    with tenant_scope(tenant):
        confirmation = ValueConfirmation.objects.get(engagement=engagement)
    assert {(a.tenant_id, a.confirmation_id) for a in answers} == {(str(tenant.pk), str(confirmation.pk))}
    assert confirmation.sent_at is not None and confirmation.attempts == 1 and confirmation.email == BUYER
    html = message.get_body(("html",)).get_content()
    assert "Data &amp; Insights" in html and "Data & Insights" not in html  # escaped in HTML only


def test_the_handler_is_registered_for_the_outbox(tenant, actor, sent_requests):
    engagement = _engagement(tenant, _offering(tenant), actor)
    _reach_pov(tenant, engagement, actor)
    with tenant_scope(tenant):
        outbox.drain(tenant)
        assert ValueConfirmation.objects.filter(engagement=engagement, sent_at=None).count() == 1
    assert sent_requests == [tenant]


@pytest.mark.parametrize("why", ["switch off", "no email", "lost", "long ago", "already answered"])
def test_no_email_when_the_customer_should_not_be_asked(why, tenant, actor, smtp):
    offering = _offering(tenant, confirm_value=why != "switch off")
    engagement = _engagement(tenant, offering, actor, email="" if why == "no email" else BUYER)
    with tenant_scope(tenant):
        extra = {"lost": "lost", "already answered": "satisfaction"}.get(why)
        if extra:
            event_record(
                tenant=tenant, engagement=engagement, type=extra, occurred_at=timezone.now() - timedelta(days=2),
                actor=actor, score=5 if extra == "satisfaction" else None,
            )  # fmt: skip
    _reach_pov(tenant, engagement, actor, ago=timedelta(days=31 if why == "long ago" else 0, minutes=5))
    assert _ask_and_send(tenant) == (0, confirmations.SendOutcome())
    assert smtp.messages == []
    with tenant_scope(tenant):
        assert not ValueConfirmation.objects.exists()


def test_never_sent_twice_for_the_same_engagement(reached, tenant, actor, smtp):
    engagement, _ = reached
    assert _ask_and_send(tenant) == (0, confirmations.SendOutcome())
    _reach_pov(tenant, engagement, actor, ago=timedelta(minutes=30))  # changes again, still reached
    _ask_and_send(tenant, now=timezone.now() + timedelta(days=1))
    assert len(smtp.messages) == 1
    with tenant_scope(tenant):
        assert ValueConfirmation.objects.count() == 1


def test_an_smtp_failure_is_retried_with_backoff_and_delivers_exactly_once(tenant, actor, smtp):
    _reach_pov(tenant, _engagement(tenant, _offering(tenant), actor), actor)
    smtp.fail_next = 1
    now = timezone.now()
    assert _ask_and_send(tenant, now) == (1, confirmations.SendOutcome(failed=1, retry_in=timedelta(minutes=1)))
    with tenant_scope(tenant):
        row = ValueConfirmation.objects.get()
    assert (row.sent_at, row.claim_token, row.attempts) == (None, None, 1) and "451" in row.last_error
    assert _ask_and_send(tenant, now + timedelta(seconds=30))[1] == confirmations.SendOutcome()  # backing off
    assert smtp.messages == []
    assert _ask_and_send(tenant, now + timedelta(minutes=2))[1] == confirmations.SendOutcome(sent=1)
    assert _ask_and_send(tenant, now + timedelta(days=1))[1] == confirmations.SendOutcome()
    assert len(smtp.to(BUYER)) == 1
    with tenant_scope(tenant):
        row.refresh_from_db()
    assert row.sent_at is not None and row.attempts == 2 and row.last_error == ""


def test_the_task_records_a_failure_and_sends_nothing_early(tenant, actor, smtp):
    _reach_pov(tenant, _engagement(tenant, _offering(tenant), actor), actor)
    with tenant_scope(tenant):
        confirmations.ask_for_confirmations(tenant=tenant)
    smtp.fail_next = 1
    send_confirmations.apply(kwargs={"tenant_id": str(tenant.pk)})  # the retry it asks for runs too early
    with tenant_scope(tenant):
        row = ValueConfirmation.objects.get()
    assert smtp.messages == [] and row.attempts == 1 and row.sent_at is None


def test_a_claimed_confirmation_is_left_to_its_claimer(tenant, actor, smtp):
    """A claim never released (a worker died during the SMTP call) may have gone out: never again."""
    _reach_pov(tenant, _engagement(tenant, _offering(tenant), actor), actor)
    with tenant_scope(tenant):
        confirmations.ask_for_confirmations(tenant=tenant)
        ValueConfirmation.objects.update(claim_token="0b6f3c1e-0d2b-4a4e-9a57-1f5f0c9c2d11")
    assert _ask_and_send(tenant, timezone.now() + timedelta(days=2))[1] == confirmations.SendOutcome()
    assert smtp.messages == []


# The link ------------------------------------------------------------------------------------------------


def _answer(client, path, **form):
    """Send the question page's form, as its one button does (the page's CSRF token included)."""
    page = client.get(path).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    return client.post(path, {**form, **({"csrfmiddlewaretoken": csrf.group(1)} if csrf else {})})


def test_a_click_shows_the_question_with_its_answer_chosen_and_records_nothing(reached, tenant, client):
    engagement, message = reached
    response = client.get(_path(_link_for(message, 4)))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Did Data &amp; Insights from Acme give you the value you expected?" in page
    assert re.search(r'<input type="radio" name="score" value="4"\s+checked>', page)
    assert len(re.findall(r"\bchecked\b", page)) == 1
    assert re.search(r'<button type="submit" class="primary" autofocus>Send my answer</button>', page)
    for private in ("Globex", BUYER, "p-1", "owner-p-1", str(engagement.pk)):  # nothing beyond the two names
        assert private not in page
    assert response["Referrer-Policy"] == "same-origin"
    assert _satisfaction_events(tenant, engagement) == [], "a mail scanner following the link answered"
    with tenant_scope(tenant):
        assert ValueConfirmation.objects.get().answered_at is None


def test_sending_records_one_satisfaction_event_and_says_thank_you(reached, tenant):
    engagement, message = reached
    browser, path = Client(enforce_csrf_checks=True), _path(_link_for(message, 4))
    response = _answer(browser, path, score="4")
    assert response.status_code == 302 and response["Location"] == path
    thanks = browser.get(path)
    assert "Thank you" in thanks.content.decode() and "4 of 5" in thanks.content.decode()
    assert thanks["Referrer-Policy"] == "same-origin"
    [event] = _satisfaction_events(tenant, engagement)
    assert (event.score, event.source, event.recorded_by) == (4, "customer", BUYER)
    with tenant_scope(tenant):
        confirmation = ValueConfirmation.objects.get()
    assert confirmation.score == 4 and confirmation.answered_at is not None


def test_the_question_asks_about_each_success_criterion_and_keeps_each_answer(tenant, actor, smtp):
    engagement = _engagement(tenant, _offering(tenant), actor)
    with tenant_scope(tenant):
        success_criteria_set(tenant=tenant, engagement=engagement, actor=actor,
                             criteria=["Invoices out in one day", "Team trained", "Reports by Monday"])  # fmt: skip
    _reach_pov(tenant, engagement, actor)
    _ask_and_send(tenant)
    browser, path = Client(enforce_csrf_checks=True), _path(_link_for(smtp.messages[0], 5))
    page = browser.get(path).content.decode()
    assert "Did you get: <strong>Invoices out in one day</strong>?" in page
    assert 'name="criterion:Reports by Monday" value="no"' in page
    assert "autofocus" not in page  # the questions come before the button

    # Yes, no, and the third left unanswered (it is then not recorded either way).
    answers = {"criterion:Invoices out in one day": "yes", "criterion:Team trained": "no",
               "criterion:Reports by Monday": "maybe", "criterion:A criterion since removed": "yes"}  # fmt: skip
    _answer(browser, path, score="4", **answers)

    [event] = _satisfaction_events(tenant, engagement)
    assert (event.score, event.criteria_met) == (4, {"Invoices out in one day": True, "Team trained": False})
    thanks = browser.get(path).content.decode()
    # In the order the customer's criteria are listed (stored JSON keeps keys in an order of its own).
    first, second = (
        thanks.index("Invoices out in one day: <strong>yes</strong>"),
        thanks.index("Team trained: <strong>no</strong>"),
    )
    assert first < second


def test_without_success_criteria_the_question_asks_only_the_score(reached, tenant, client):
    engagement, message = reached
    path = _path(_link_for(message, 5))
    assert "Did you get:" not in client.get(path).content.decode()
    _answer(client, path, score="5", **{"criterion:Invoices out in one day": "yes"})
    [event] = _satisfaction_events(tenant, engagement)
    assert event.criteria_met is None


def test_the_customer_may_choose_another_answer_than_the_link_s(reached, tenant, client):
    engagement, message = reached
    _answer(client, _path(_link_for(message, 4)), score="2")
    assert [e.score for e in _satisfaction_events(tenant, engagement)] == [2]


@pytest.mark.parametrize("score", ["", "0", "6", "five", "4.5"])
def test_a_missing_or_impossible_score_sends_the_link_s_answer(reached, tenant, client, score):
    engagement, message = reached
    _answer(client, _path(_link_for(message, 3)), score=score)
    assert [e.score for e in _satisfaction_events(tenant, engagement)] == [3]


def test_the_first_answer_wins(reached, tenant, client):
    engagement, message = reached
    _answer(client, _path(_link_for(message, 4)), score="4")
    _answer(client, _path(_link_for(message, 1)), score="1")
    again = client.get(_path(_link_for(message, 1)))
    assert again.status_code == 200 and "4 of 5" in again.content.decode()
    assert [e.score for e in _satisfaction_events(tenant, engagement)] == [4]


def test_a_head_request_answers_nothing(reached, tenant, client):
    engagement, message = reached
    assert client.head(_path(_link_for(message, 1))).status_code == 200
    assert _satisfaction_events(tenant, engagement) == []


@pytest.mark.parametrize(("score", "completes"), [(5, True), (4, True), (2, False)])
def test_with_requires_satisfaction_a_good_score_completes_pov(score, completes, tenant, actor, smtp, client):
    offering = _offering(tenant, requires_satisfaction=True, threshold=4)
    engagement = _engagement(tenant, offering, actor)
    _reach_pov(tenant, engagement, actor)
    _ask_and_send(tenant)  # asked although the status is not "reached" yet
    with tenant_scope(tenant):
        assert Engagement.objects.get(pk=engagement.pk).status != Status.REACHED
    _answer(client, _path(_link_for(smtp.messages[0], score)))
    with tenant_scope(tenant):
        engagement.refresh_from_db()
    assert (engagement.status == Status.REACHED) is completes
    assert (engagement.pov_at is not None) is completes


def test_a_comment_is_kept_once_and_added_to_the_timeline(reached, tenant):
    engagement, message = reached
    browser = Client(enforce_csrf_checks=True)
    path = _path(_link_for(message, 5))
    response = _answer(browser, path, score="5", comment="  Onboarding <b>was</b> quick.  ")
    assert response.status_code == 302 and response["Location"] == path
    _answer(browser, path, comment="Second thoughts")  # from the thank-you page's comment form
    assert "We received your comment" in browser.get(path).content.decode()
    with tenant_scope(tenant):
        assert ValueConfirmation.objects.get().comment == "Onboarding <b>was</b> quick."
        [note] = Note.objects.filter(engagement=engagement)
    assert note.body.endswith("Onboarding <b>was</b> quick.") and note.author_label == BUYER
    assert [e.score for e in _satisfaction_events(tenant, engagement)] == [5]


def test_a_comment_may_follow_the_answer(reached, tenant):
    engagement, message = reached
    browser, path = Client(enforce_csrf_checks=True), _path(_link_for(message, 5))
    _answer(browser, path, score="5")
    assert 'name="comment"' in browser.get(path).content.decode()
    _answer(browser, path, comment="Later thought")
    with tenant_scope(tenant):
        assert ValueConfirmation.objects.get().comment == "Later thought"
    assert [e.score for e in _satisfaction_events(tenant, engagement)] == [5]


def test_an_expired_link_is_a_400_page_and_records_nothing(reached, tenant, client):
    engagement, _ = reached
    with tenant_scope(tenant):
        confirmation = ValueConfirmation.objects.get()

    def signed_days_ago(days, score):
        with mock.patch("django.core.signing.time.time", return_value=time.time() - days * 86400):
            return confirmations.make_token(confirmation, score)

    expired = f"/value/{signed_days_ago(31, 5)}/"
    response = client.get(expired)
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert client.post(expired, {"score": "5"}).status_code == 400
    assert _satisfaction_events(tenant, engagement) == []
    assert client.get(f"/value/{signed_days_ago(29, 5)}/").status_code == 200  # still within the 30 days


def test_a_tampered_link_is_a_400_page_and_records_nothing(reached, tenant, client):
    engagement, message = reached
    token = _token(_link_for(message, 1))
    signature = token.split(":", 1)[1]
    raised = _payload(signing.loads(token, salt=confirmations.TOKEN_SALT), s=5)
    for forged in (f"{raised}:{signature}", token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x"):
        response = client.get(f"/value/{forged}/")
        assert response.status_code == 400 and "not valid" in response.content.decode()
        assert client.post(f"/value/{forged}/", {"score": "5"}).status_code == 400
    assert _satisfaction_events(tenant, engagement) == []


def test_another_tenants_token_cannot_touch_this_tenants_engagements(
    reached, tenant, other_tenant, actor, client, smtp
):
    engagement, _ = reached
    with tenant_scope(tenant):
        ours = ValueConfirmation.objects.get()
    # Even a correctly signed token is looked up in the tenant it names: acme's row is not in charlie's scope.
    crossed = signing.dumps({"t": str(other_tenant.pk), "c": str(ours.pk), "s": 1}, salt=confirmations.TOKEN_SALT)
    response = client.get(f"/value/{crossed}/")
    assert response.status_code == 404 and "Acme" not in response.content.decode()
    assert client.post(f"/value/{crossed}/", {"score": "1"}).status_code == 404
    # Charlie's own link re-pointed at acme's confirmation without the key fails the signature.
    theirs = _engagement(other_tenant, _offering(other_tenant, name="Charlie Suite"), actor, email="cto@initech.test")
    _reach_pov(other_tenant, theirs, actor)
    _ask_and_send(other_tenant)
    [their_message] = smtp.to("cto@initech.test")
    their_url = _link_for(their_message, 1)
    signature = _token(their_url).split(":", 1)[1]
    data = signing.loads(_token(their_url), salt=confirmations.TOKEN_SALT)
    repointed = _payload(data, t=str(tenant.pk), c=str(ours.pk))
    assert client.get(f"/value/{repointed}:{signature}/").status_code == 400
    assert client.post(f"/value/{repointed}:{signature}/", {"score": "1"}).status_code == 400
    assert _satisfaction_events(tenant, engagement) == []
    # Charlie's real link answers charlie's engagement only.
    assert "Charlie Suite" in client.get(_path(their_url)).content.decode()
    _answer(client, _path(their_url))
    assert [e.score for e in _satisfaction_events(other_tenant, theirs)] == [1]
    assert _satisfaction_events(tenant, engagement) == []


# Concurrency and a real worker ------------------------------------------------------------------------------


def _run_together(target, n=2):
    errors = []

    def run():
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_two_concurrent_runs_ask_once_and_send_once(transactional_db, tenant, actor, smtp, sent_requests):
    engagement = _engagement(tenant, _offering(tenant), actor)
    _reach_pov(tenant, engagement, actor)
    found = confirmations.engagements_to_ask

    def both_found_it(now):
        rows = list(found(now))
        barrier.wait(timeout=10)  # both runs chose the engagement before either inserts
        return rows

    def handle():
        with tenant_scope(tenant), transaction.atomic():
            confirmations.on_engagements_changed(tenant, [])

    barrier = threading.Barrier(2)
    with mock.patch.object(confirmations, "engagements_to_ask", both_found_it):
        _run_together(handle)
    assert sent_requests == [tenant, tenant]
    with tenant_scope(tenant):
        assert ValueConfirmation.objects.filter(engagement=engagement).count() == 1
    render = confirmations.confirmation_email

    def both_saw_it_due(*args):
        message = render(*args)
        barrier.wait(timeout=10)  # both runs selected the row as due; now they race for the claim
        return message

    def send():
        with tenant_scope(tenant):
            confirmations.send_pending(tenant=tenant)

    barrier = threading.Barrier(2)
    with mock.patch.object(confirmations, "confirmation_email", both_saw_it_due):
        _run_together(send)
    assert len(smtp.to(BUYER)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_drains_the_outbox_and_the_customer_gets_the_email(tenant, actor, smtp, client):
    engagement = _engagement(tenant, _offering(tenant, requires_satisfaction=True), actor)
    worker = WorkerProcess().start({"EMAIL_URL": smtp.url, "SITE_URL": SITE})
    try:
        _reach_pov(tenant, engagement, actor)  # committed: its outbox drain goes to the worker
        [message] = wait_for(lambda: smtp.to(BUYER), timeout=60)
    finally:
        worker.stop()
    assert message["Subject"] == "Did Data & Insights from Acme give you the value you expected?"
    assert all(url.startswith(f"{SITE}/value/") for url in _links(message)[0])
    with tenant_scope(tenant):
        assert ValueConfirmation.objects.get(engagement=engagement).sent_at is not None
    assert _answer(client, _path(_link_for(message, 5))).status_code == 302
    with tenant_scope(tenant):
        assert Engagement.objects.get(pk=engagement.pk).status == Status.REACHED


# Turning the question on -----------------------------------------------------------------------------------


def test_turning_the_question_on_says_how_many_will_be_asked_and_waits_for_a_yes(tenant, actor, login, smtp):
    offering = _offering(tenant, confirm_value=False)
    for ref, ago in (("p-1", timedelta(days=2)), ("p-2", timedelta(days=10)), ("p-old", timedelta(days=40))):
        engagement = _engagement(tenant, offering, actor, email=f"{ref}@globex.test", external_id=ref)
        _reach_pov(tenant, engagement, actor, ago=ago)
    admin = login(MemberFactory(tenant=tenant, role="admin"))
    form = {
        "name": offering.name, "confirm_value": "on", "satisfaction_threshold": "4",
        "m_key": ["m1", "m2", "m3"], "m_name": ["M1", "M2", "M3"], "m_due": ["2", "7", "14"],
    }  # fmt: skip
    path = f"/t/{tenant.slug}/journeys/{offering.key}/"
    first = admin.post(path, form)
    page = first.content.decode()
    assert first.status_code == 200
    assert "emails 2 customers of Data &amp; Insights who reached PoV in the last 30 days" in page
    assert "Nothing is saved yet." in page and 'name="confirmed" value="yes"' in page
    with tenant_scope(tenant):
        offering.refresh_from_db()
        assert offering.confirm_value is False and not ValueConfirmation.objects.exists()

    assert admin.post(path, {**form, "confirmed": "yes"}).status_code == 302
    with tenant_scope(tenant):
        offering.refresh_from_db()
        assert offering.confirm_value is True
        outbox.drain(tenant)
        asked = set(ValueConfirmation.objects.values_list("email", flat=True))
    assert asked == {"p-1@globex.test", "p-2@globex.test"}, "the notice said how many, and so many were asked"


def test_saving_a_journey_that_asks_already_needs_no_yes(tenant, actor, login):
    offering = _offering(tenant, confirm_value=True)
    _reach_pov(tenant, _engagement(tenant, offering, actor), actor)
    admin = login(MemberFactory(tenant=tenant, role="admin"))
    form = {
        "name": "Renamed", "confirm_value": "on", "satisfaction_threshold": "4",
        "m_key": ["m1", "m2", "m3"], "m_name": ["M1", "M2", "M3"], "m_due": ["2", "7", "14"],
    }  # fmt: skip
    assert admin.post(f"/t/{tenant.slug}/journeys/{offering.key}/", form).status_code == 302
