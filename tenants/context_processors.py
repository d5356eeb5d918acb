def tenant(request):
    return {"tenant": getattr(request, "tenant", None), "member": getattr(request, "member", None)}
