"""The emails of notify, each from one subject/text/HTML template trio, and the absolute links they carry."""

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from tenants.models import Tenant


def absolute(name: str, *args: object) -> str:
    """The full URL of one of our pages, for emails and webhook payloads."""
    return settings.SITE_URL.rstrip("/") + reverse(name, args=args)


def email_from_templates(
    folder: str, context: dict[str, Any], *, tenant: Tenant, to: list[str], headers: dict[str, str] | None = None
) -> EmailMultiAlternatives:
    """`folder`/subject.txt (folded onto one line), body.txt and body.html, with times in the tenant's zone."""
    with timezone.override(tenant.tzinfo):
        subject = " ".join(render_to_string(f"{folder}/subject.txt", context).split())
        text = render_to_string(f"{folder}/body.txt", context)
        html = render_to_string(f"{folder}/body.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to, headers=headers)
    message.attach_alternative(html, "text/html")
    return message
