"""Request examples shown in the OpenAPI document and Swagger UI."""

from drf_spectacular.utils import OpenApiExample

CUSTOMER = OpenApiExample(
    "A customer from the CRM",
    request_only=True,
    value={"external_id": "C-77", "name": "Ada Lovelace", "email": "ada@example.com", "segment": "smb",
           "attributes": {"country": "DE"}},
)  # fmt: skip
OFFERING = OpenApiExample(
    "A software subscription's journey",
    request_only=True,
    value={
        "key": "software", "name": "Software subscription", "requires_satisfaction": False,
        "milestones": [
            {"key": "kickoff", "name": "Kick-off call", "due_day": 3},
            {"key": "installed", "name": "Installed", "due_day": 14},
            {"key": "used", "name": "Used as desired", "due_day": 60},
        ],
    },
)  # fmt: skip
PURCHASE = OpenApiExample(
    "A sale with its customer",
    request_only=True,
    value={
        "external_id": "INV-1001",
        "customer": {"external_id": "C-77", "name": "Ada Lovelace", "email": "ada@example.com"},
        "offering": "software", "purchased_at": "2026-05-01T09:00:00+02:00",
        "amount": "1200.00", "currency": "EUR", "owner": "owner@demo.pov", "sales_rep": "sales@demo.pov",
        "success_criteria": ["Invoices out in one day", "Team of five trained"],
    },
)  # fmt: skip
MILESTONE = OpenApiExample(
    "A milestone reached",
    request_only=True,
    value={"type": "milestone", "purchase": "INV-1001", "milestone": "installed",
           "occurred_at": "2026-05-09T15:30:00+02:00", "external_id": "crm-evt-5521"},
)  # fmt: skip
SATISFACTION = OpenApiExample(
    "The customer's satisfaction",
    request_only=True,
    value={"type": "satisfaction", "purchase": "INV-1001", "score": 4, "comment": "Invoices fly out; training next.",
           "occurred_at": "2026-06-20T10:00:00Z",
           "criteria_met": {"Invoices out in one day": True, "Team of five trained": False}},
)  # fmt: skip
LOST = OpenApiExample(
    "A customer lost",
    request_only=True,
    value={"type": "lost", "purchase": "INV-1001", "reason": "Cancelled during onboarding",
           "occurred_at": "2026-05-20T10:00:00Z"},
)  # fmt: skip
REASSIGN = OpenApiExample(
    "Hand the customer over to service",
    request_only=True,
    value={"owner": "service@demo.pov", "note": "Installed; service takes it from here."},
)
