"""Messages for a chat channel (a Slack-compatible incoming webhook): what happened to whom, its owner,
the day of the value clock, and a link. Built from a delivery's stored data as Block Kit, with a plain
`text` for notifications and for chat tools that do not read blocks."""

import json
from typing import Any

from notify.models import WebhookDelivery, WebhookEvent

HEADLINES = {
    WebhookEvent.STALLED: "{customer} is stalled",
    WebhookEvent.AT_RISK: "{customer} is at risk of not reaching value",
    WebhookEvent.REACHED_POV: "{customer} reached the point of value",
    WebhookEvent.LOST: "{customer} was lost",
    WebhookEvent.ALERT_ASSIGNED: "The alert on {customer} is now {assignee}'s",
}


def escaped(text: Any) -> str:
    """Text as Slack's mrkdwn shows it literally: its three control characters escaped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_body(delivery: WebhookDelivery) -> bytes:
    data = delivery.payload.get("data", {})
    if delivery.event not in HEADLINES:  # the "Send a test" button's event
        text = "A test message from PoV: this channel is connected."
        return _json({"text": text, "blocks": [_section(text)]})
    engagement = data["engagement"]
    assignee = (data.get("alert") or {}).get("assignee") or "nobody"
    name = engagement["customer"]["name"] or engagement["customer"]["external_id"]
    headline = HEADLINES[delivery.event].format(customer=escaped(name), assignee=escaped(assignee))
    link = f"*<{engagement['url']}|{headline}>*"
    facts = _facts(delivery.event, engagement)
    blocks = [
        _section(f"{link}\n{facts[0]}" if facts[0] else link),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts[1:])}]},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in PoV"}, "url": engagement["url"]},
        ]},
    ]  # fmt: skip
    return _json({"text": headline, "blocks": blocks})


def _facts(event: str, engagement: dict) -> list[str]:
    """The line under the headline, then the context line's parts."""
    if event == WebhookEvent.REACHED_POV and engagement["days_to_value"] is not None:
        first = f"Reached in {engagement['days_to_value']:.0f} days"
    elif event == WebhookEvent.LOST:
        first = f"Reason: {escaped(engagement['lost_reason'] or 'not given')}"
    elif engagement["next_step"]:
        due = (engagement["next_due_at"] or "")[:10]
        first = f"Next: {escaped(engagement['next_step'])}" + (f", due {due}" if due else "")
    else:
        first = ""
    owner = escaped(engagement["owner"] or "no owner")
    context = [
        f"Owner: {owner}",
        f"Day {engagement['value_clock_day']} of the value clock",
        escaped(engagement["offering"]),
    ]
    return [first, *context]


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _json(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
