"""The staff admin. Lists every tenant's rows to superusers, and only their own tenants' rows to
other staff, by an explicit tenant filter (django-scopes is disabled inside admin views)."""

from functools import update_wrapper

from django.contrib import admin
from django_scopes import scopes_disabled

from tenants.models import Member


class PovAdminSite(admin.AdminSite):
    site_header = "PoV administration"
    site_title = "PoV admin"
    index_title = "Records"

    def admin_view(self, view, cacheable=False):
        def scopes_off(request, *args, **kwargs):
            # Admin spans tenants by design; TenantAdmin.get_queryset narrows it per staff user.
            # Templates are rendered here so their queries run inside the same context.
            with scopes_disabled():
                response = view(request, *args, **kwargs)
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()
                return response

        return super().admin_view(update_wrapper(scopes_off, view), cacheable)


def staff_tenant_ids(user):
    return list(Member.unscoped.filter(user=user, is_active=True).values_list("tenant_id", flat=True))


class TenantAdmin(admin.ModelAdmin):
    """Rows of the tenants the staff user belongs to; superusers see all."""

    tenant_path = "tenant"

    def get_queryset(self, request):
        qs = self.model._default_manager.all()
        ordering = self.get_ordering(request)
        if ordering:
            qs = qs.order_by(*ordering)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_path}__in": staff_tenant_ids(request.user)})

    def save_formset(self, request, form, formset, change):
        """Inline rows (an offering's milestones) belong to the parent's tenant."""
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            obj.delete()
        for obj in instances:
            if hasattr(obj, "tenant_id") and obj.tenant_id is None:
                obj.tenant_id = form.instance.tenant_id
            obj.save()
        formset.save_m2m()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if not request.user.is_superuser:
            ids = staff_tenant_ids(request.user)
            if related._meta.model_name == "tenant":
                kwargs["queryset"] = related.objects.filter(id__in=ids)
            elif any(f.name == "tenant" for f in related._meta.fields):
                kwargs["queryset"] = related._default_manager.filter(tenant_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
