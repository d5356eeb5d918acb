"""The public page behind the value confirmation links: no login, the signed token is the key.

The token's tenant id decides the scope the confirmation is looked up in, so a token can only ever
touch its own tenant's rows; a forged one fails the signature. The page shows the tenant's and the
offering's names and the recorded answer, nothing else.
"""

from django.core import signing
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from notify import confirmations
from notify.models import ValueConfirmation
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _private(response):
    # The token in the URL must not travel in a Referer header or end up in a search index.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _invalid(request, *, expired=False, status=400):
    return _private(render(request, "notify/confirmation/invalid.html", {"expired": expired}, status=status))


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def value_confirmation(request, token):
    try:
        answer = confirmations.read_token(token)
    except signing.SignatureExpired:
        return _invalid(request, expired=True)
    except signing.BadSignature:
        return _invalid(request)
    tenant = Tenant.objects.filter(pk=answer.tenant_id).first()
    if tenant is None:
        return _invalid(request, status=404)
    with tenant_scope(tenant):
        confirmation = (
            ValueConfirmation.objects.filter(pk=answer.confirmation_id).select_related("engagement__offering").first()
        )
        if confirmation is None:
            return _invalid(request, status=404)
        # HEAD (link checkers, mail scanners) shows the page without answering.
        if request.method != "HEAD":
            confirmation, _ = confirmations.confirmation_answer(
                tenant=tenant, confirmation=confirmation, score=answer.score
            )
        if request.method == "POST":
            confirmations.confirmation_comment(
                tenant=tenant, confirmation=confirmation, comment=request.POST.get("comment", "")
            )
            return redirect("value-confirmation", token=token)
        score = confirmation.score or answer.score
        context = {
            "company": tenant.name,
            "offering": confirmation.engagement.offering.name,
            "score": score,
            "score_label": confirmations.SCORE_LABELS[score],
            "commented": bool(confirmation.comment),
        }
        return _private(render(request, "notify/confirmation/thanks.html", context))


public_urlpatterns = [path("value/<str:token>/", value_confirmation, name="value-confirmation")]
