from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from engagement import queries
from engagement.models import Status
from tenants.scoping import memberships_of


@login_required
def home(request):
    """Send a member to their tenant; someone with several picks one."""
    memberships = list(memberships_of(request.user))
    if len(memberships) == 1:
        return redirect("overview", slug=memberships[0].tenant.slug)
    return render(request, "tenants/choose.html", {"memberships": memberships})


def overview(request, slug):
    counts = queries.status_counts()
    total = sum(counts.values())
    reached = counts[Status.REACHED]
    return render(
        request,
        "engagement/overview.html",
        {
            "status_rows": [(value, label, counts[value]) for value, label in Status.choices],
            "total": total,
            "reached": reached,
            "pov_rate": (reached / total) if total else None,
            "unowned": queries.unowned_count(),
        },
    )
