"""The public page behind the value confirmation links: no login, the signed token is the key.

The token's tenant id decides the scope the confirmation is looked up in, so a token can only ever
touch its own tenant's rows; a forged one fails the signature. The page shows the tenant's and the
offering's names and the question or the recorded answer, nothing else.
"""

from django.core import signing
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from engagement import cleaners
from notify import confirmations
from notify.models import ValueConfirmation
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _private(response):
    # The token in the URL must not travel to another site in a Referer header, nor end up in a search
    # index. `same-origin` rather than `no-referrer`: with the latter browsers send the page's form with
    # `Origin: null`, which the CSRF check refuses, so the customer's answer could never be sent.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _invalid(request, *, expired=False, status=400):
    return _private(render(request, "notify/confirmation/invalid.html", {"expired": expired}, status=status))


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def value_confirmation(request, token):
    """GET shows the question with the link's answer chosen (mail scanners follow links: a GET records
    nothing); the POST of its one button records the answer and the optional comment."""
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
            ValueConfirmation.objects.filter(pk=answer.confirmation_id)
            .select_related("engagement__offering", "engagement__purchase")
            .first()
        )
        if confirmation is None:
            return _invalid(request, status=404)
        if request.method == "POST":
            _record(request, tenant, confirmation, answer.score)
            return redirect("value-confirmation", token=token)
        return _private(_page(request, tenant, confirmation, answer.score))


def _record(request, tenant, confirmation, linked_score):
    """The score chosen on the page (the link's unless the customer picked another) and the comment."""
    chosen = request.POST.get("score", "")
    score = int(chosen) if chosen in {str(s) for s in confirmations.SCORES} else linked_score
    met = cleaners.criteria_answered(request.POST, confirmation.engagement.purchase.success_criteria)
    confirmation, _ = confirmations.confirmation_answer(tenant=tenant, confirmation=confirmation, score=score,
                                                        criteria_met=met)  # fmt: skip
    confirmations.confirmation_comment(tenant=tenant, confirmation=confirmation, comment=request.POST.get("comment"))


def _page(request, tenant, confirmation, linked_score):
    context = {"company": tenant.name, "offering": confirmation.engagement.offering.name}
    if confirmation.answered_at is None:
        scores = [{"score": s, "label": confirmations.SCORE_LABELS[s]} for s in confirmations.SCORES]
        criteria = confirmation.engagement.purchase.success_criteria
        context |= {"scores": scores, "chosen": linked_score, "criteria": criteria}
        return render(request, "notify/confirmation/question.html", context)
    score = confirmation.score
    context |= {"score": score, "score_label": confirmations.SCORE_LABELS[score]}
    context["commented"] = bool(confirmation.comment)
    context["criteria_met"] = confirmations.answered_criteria(confirmation)
    context["criteria"] = confirmation.engagement.purchase.success_criteria
    return render(request, "notify/confirmation/thanks.html", context)


public_urlpatterns = [path("value/<str:token>/", value_confirmation, name="value-confirmation")]
