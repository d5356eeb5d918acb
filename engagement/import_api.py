"""POST /api/v1/imports/ (multipart: file, kind, mapping?, dry_run?) queues a CSV import through the same
path as Settings → Import; GET /api/v1/imports/<id>/ follows it, and its errors_url serves the rejected rows."""

import json

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from engagement import csv_files, imports
from engagement.errors import Invalid
from engagement.models import Import, ImportState
from tenants.api_base import TenantAPIView
from tenants.models import ADMIN_ONLY
from tenants.scoping import get_or_404

IMPORT_KINDS = list(csv_files.FIELDS)
ImportOut = inline_serializer(
    "ImportOut",
    {
        "id": serializers.UUIDField(), "kind": serializers.CharField(), "filename": serializers.CharField(),
        "state": serializers.ChoiceField(choices=["queued", "running", "done", "failed"]),
        "dry_run": serializers.BooleanField(), "mapping": serializers.DictField(), "rows": serializers.IntegerField(),
        "done_rows": serializers.IntegerField(), "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(), "unchanged": serializers.IntegerField(),
        "rejected": serializers.IntegerField(), "error": serializers.CharField(), "errors_url": serializers.URLField(),
    },
)  # fmt: skip
ImportIn = inline_serializer(
    "ImportIn",
    {
        "file": serializers.FileField(help_text="CSV, up to 50 MB; UTF-8, UTF-16 or Windows-1252; , ; or tab."),
        "kind": serializers.ChoiceField(choices=IMPORT_KINDS),
        "mapping": serializers.CharField(required=False, help_text='JSON {"column": "field"}; columns named '
                                         "like the API's fields map themselves."),
        "dry_run": serializers.BooleanField(required=False),
        "time_zone": serializers.CharField(required=False, help_text="For times without an offset."),
    },
)  # fmt: skip


def _shown(request, run: Import) -> dict:
    state = ImportState.QUEUED if run.state == ImportState.DRAFT else run.state
    errors = reverse("import-errors", kwargs={"pk": run.pk})
    return {
        "id": run.pk, "kind": run.kind, "filename": run.filename, "state": state, "dry_run": run.dry_run,
        "mapping": run.mapping, "rows": run.rows, "done_rows": run.done_rows, "created": run.created,
        "updated": run.updated, "unchanged": run.unchanged, "rejected": run.rejected, "error": run.error,
        "errors_url": request.build_absolute_uri(errors),
    }  # fmt: skip


def _mapping(raw: str | None) -> dict | None:
    if not raw:
        return None
    try:
        mapping = json.loads(raw)
    except ValueError:
        raise Invalid({"mapping": ['Send JSON, e.g. {"Order ID": "external_id"}.']}) from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise Invalid({"mapping": ['An object of column -> field, e.g. {"Order ID": "external_id"}.']})
    return mapping


class ImportViewSet(TenantAPIView, viewsets.GenericViewSet):
    write_roles = ADMIN_ONLY  # as Settings → Import
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return Import.objects.defer("data")

    @extend_schema(
        summary="Import a CSV file of customers, purchases or events",
        request={"multipart/form-data": ImportIn},
        responses={202: ImportOut},
    )
    def create(self, request):
        upload = request.FILES.get("file")
        raw = imports.uploaded(upload, "Send the CSV file as the multipart field 'file'.")
        run = imports.import_create(
            tenant=self.tenant, actor=self.actor, kind=request.data.get("kind", ""), filename=upload.name,
            raw=raw, mapping=_mapping(request.data.get("mapping")),
            time_zone=request.data.get("time_zone", ""),
            dry_run=str(request.data.get("dry_run", "")).lower() in ("1", "true", "yes"), start=True,
        )  # fmt: skip
        return Response(_shown(request, run), status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="An import and how far it got", responses={200: ImportOut})
    def retrieve(self, request, pk=None):
        return Response(_shown(request, get_or_404(self.get_queryset(), pk=pk)))

    @extend_schema(summary="The rejected rows of an import, as CSV (row, reason)", responses={200: OpenApiTypes.STR})
    @action(detail=True, methods=["get"], url_path="errors", url_name="errors")
    def errors(self, request, pk=None):
        return imports.rejected_csv(get_or_404(self.get_queryset(), pk=pk))
