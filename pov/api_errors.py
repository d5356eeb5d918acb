"""The API's error format (the API reference at /api/docs/), strict JSON parsing and strict serializers.

Every error is `{"error": {"code", "message", "fields"}}`; field paths are dotted
("milestones.0.key", "items.3.data.occurred_at").
"""

import json
import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser

from engagement.errors import Conflict, Missing

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The body is larger than 1 MiB."
    default_code = "too_large"


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.fields = fields or {}


class IdempotencyMismatch(exceptions.APIException):
    status_code = 422
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was used with another request body."


def _flatten(detail, path=""):
    """DRF's nested error detail as {"dotted.path": [messages]}."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            out.update(_flatten(value, f"{path}.{name}".strip(".") if name else path))
        return out
    if isinstance(detail, list) and detail and all(isinstance(d, (dict, list)) for d in detail):
        out = {}
        for i, value in enumerate(detail):
            if value:
                out.update(_flatten(value, f"{path}.{i}".strip(".")))
        return out
    messages = [str(d) for d in (detail if isinstance(detail, list) else [detail])]
    return {path or "non_field_errors": messages}


def error_body(code, message, fields=None):
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _summary(fields):
    first = next(iter(fields.items()), None)
    if first is None:
        return "The request is invalid."
    name, messages = first
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    return f"{name}: {messages[0]}{more}" if name != "non_field_errors" else f"{messages[0]}{more}"


def exception_handler(exc, context):
    # Imported here: rest_framework.views imports the API settings, which import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Conflict):
        exc = ConflictError(exc.message, exc.fields)
    elif isinstance(exc, Missing):
        exc = NotFoundRef(exc.field, exc.message)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        response.data = error_body("invalid", _summary(fields), fields)
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Request failed."
        response.data = error_body(code, message, getattr(exc, "fields", None))
    return response


@csrf_exempt
def json_not_found(request, exception=None):
    """handler404: JSON under /api/, the normal page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)
    return defaults.page_not_found(request, exception)


UNAVAILABLE = "The database is unavailable for a moment; retry shortly."
RETRY_AFTER_SECONDS = 5


def database_unavailable(request):
    """503 with Retry-After: the database went away (restart, failover); the app reconnects by itself."""
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body("unavailable", UNAVAILABLE), status=503)
    else:
        # No context processors: they would query the database that is down.
        response = HttpResponse(render_to_string("503.html", {"message": UNAVAILABLE}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def json_server_error(request):
    # handler500 runs while Django is still handling the exception, so it is the current one.
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return database_unavailable(request)
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side; it has been logged."), status=500
        )
    return defaults.server_error(request)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(value, limit):
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise exceptions.ParseError(f"The body is nested deeper than {limit} levels.")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _lone_surrogate_path(value):
    """The dotted path of the first string (key or value) holding a lone surrogate ("\\ud800" escaped in
    the JSON): valid JSON, but not Unicode text, so it can be neither stored nor sent back as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        pass  # find which one, below
    else:
        return None  # the common case, checked in C
    stack = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path or "non_field_errors"
        elif isinstance(item, dict):
            for key, inner in item.items():
                # The path itself must be sendable: a bad key is named with the surrogate escaped.
                inner_path = f"{path}.{key.encode('utf-8', 'backslashreplace').decode()}".strip(".")
                stack.extend([(key, inner_path), (inner, inner_path)])
        elif isinstance(item, list):
            stack.extend((inner, f"{path}.{i}".strip(".")) for i, inner in enumerate(item))
    return None


class NotUnicode(exceptions.ParseError):
    def __init__(self, path):
        message = "A lone surrogate (e.g. \\ud800) is not Unicode text; send the character or a valid pair."
        super().__init__(f"{path}: {message}")
        self.fields = {path: [message]}


class StrictJSONParser(JSONParser):
    """JSON only: bounded size and depth, UTF-8, no NaN/Infinity, an object at the top."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"The body is not valid UTF-8 (byte {exc.start}).") from exc
        if "\x00" in text:
            raise exceptions.ParseError("The body contains a NUL character.")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise exceptions.ParseError("The body must be a JSON object.")
        _check_depth(data, MAX_DEPTH)
        surrogate_at = _lone_surrogate_path(data)
        if surrogate_at is not None:
            raise NotUnicode(surrogate_at)
        return data


class StrictSerializer(serializers.Serializer):
    """Unknown fields are an error naming them, instead of being silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, f in self.fields.items() if not f.read_only})
            if unknown:
                raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset; a naive timestamp is rejected instead of guessed."""

    default_error_messages = {
        "naive": "Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00 or ...Z); naive times are ambiguous.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str) and value:
            try:
                parsed = parse_datetime(value)
            except ValueError:
                parsed = None  # not a date at all: DateTimeField reports the format error
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


class NotFoundRef(exceptions.NotFound):
    """A body names an object (purchase, customer, offering) that this tenant does not have."""

    def __init__(self, field, message):
        super().__init__(message)
        self.fields = {field: [message]}


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("csrf_failed", f"CSRF check failed: {reason}"), status=403)
    return django_csrf_failure(request, reason=reason)
