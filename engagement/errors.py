"""Errors the services raise; the API and views turn them into 400 / 409 with the message."""

from django.core.exceptions import ValidationError


class Invalid(ValidationError):
    """Bad input, with messages per field: Invalid({"occurred_at": ["..."]})."""

    @property
    def detail(self):
        """{field: [messages]}, as the views and templates show them."""
        return self.message_dict if hasattr(self, "error_dict") else {"non_field_errors": self.messages}


class Conflict(Exception):
    """The request contradicts what is stored (e.g. same external_id, different body)."""

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class Missing(Exception):
    """A request names an object (purchase, customer, offering) this tenant does not have: a 404 naming the field."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message
