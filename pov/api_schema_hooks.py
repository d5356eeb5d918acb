"""OpenAPI post-processing: document the error responses every endpoint can give (the API reference at /api/docs/)."""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "example": "invalid"},
                "message": {"type": "string", "example": "occurred_at: Give a time zone offset."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "example": {"occurred_at": ["Give a time zone offset."]},
                },
            },
        }
    },
}
ALWAYS = {
    "400": "Invalid input; `fields` names each problem.",
    "401": "No API key, or a bad or revoked one.",
    "403": "The key's scope does not allow this.",
    "404": "Not found (also another company's objects).",
    "405": "This method is not allowed here.",
    "406": "The Accept header asks for something other than JSON.",
    "429": "Throttled; retry after `Retry-After` seconds.",
}
WRITES = {
    "409": "Conflicts with what is stored.",
    "415": "The body is not JSON.",
    "413": "The body is over 1 MiB (or a batch over 1,000 items).",
    "422": "This Idempotency-Key was used with another body.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            codes = dict(ALWAYS)
            if method in ("post", "put", "patch"):
                codes.update(WRITES)
            for code, description in codes.items():
                operation.setdefault("responses", {}).setdefault(code, {"description": description, "content": ref})
    return result
