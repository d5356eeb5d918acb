"""`engagement.at_risk`: an engagement whose forecast falls under the company's threshold reaches the
endpoints subscribed to it once, with its forecast, through the outbox to a real HTTP receiver."""

import pytest

from engagement import outbox
from metrics.rollups import recompute_rollups
from notify import webhook_delivery
from tests.notify.webhook_helpers import ALL_EVENTS, _buy, _endpoint, _reach_pov, verified

pytestmark = pytest.mark.usefixtures("webhook_site")


def test_becoming_at_risk_is_delivered_once_with_the_forecast(scoped, actor, receiver):
    _, secret = _endpoint(scoped, actor, receiver.url, [*ALL_EVENTS, "engagement.at_risk"])
    _endpoint(scoped, actor, receiver.url, ALL_EVENTS)  # not subscribed to it
    # Nobody like it has reached PoV yet: its chance by the target day is 0, under the 50 % threshold.
    engagement = _buy(scoped, actor, ref="p-risk", days_ago=3)
    recompute_rollups(scoped)
    recompute_rollups(scoped)  # still at risk: not news
    outbox.drain(scoped)
    webhook_delivery.deliver_due(scoped)

    [request] = [r for r in receiver.requests if r.json()["type"] == "engagement.at_risk"]
    assert verified(secret, request)
    data = request.json()["data"]
    assert data["engagement"]["id"] == str(engagement.id)
    assert data["engagement"]["forecast"] == {"reach_by_target": 0.0, "expected_pov_day": None, "at_risk": True}


def test_an_engagement_that_ended_carries_no_forecast(scoped, actor, receiver):
    _endpoint(scoped, actor, receiver.url, ["engagement.reached_pov"])
    engagement = _buy(scoped, actor, ref="p-done", days_ago=3)
    recompute_rollups(scoped)
    _reach_pov(scoped, engagement, actor)
    recompute_rollups(scoped)
    outbox.drain(scoped)
    webhook_delivery.deliver_due(scoped)

    [request] = receiver.requests
    assert request.json()["data"]["engagement"]["forecast"] is None
