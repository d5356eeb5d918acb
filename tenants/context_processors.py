from tenants.scoping import memberships_of


def tenant(request):
    """The current company and membership, and (evaluated only when a page shows the switcher) the
    user's other companies."""
    current = getattr(request, "tenant", None)

    def other_memberships():
        if not request.user.is_authenticated:
            return []
        return [m for m in memberships_of(request.user) if current is None or m.tenant_id != current.pk]

    return {"tenant": current, "member": getattr(request, "member", None), "other_memberships": other_memberships}
