from django.contrib.admin.apps import AdminConfig


class PovAdminConfig(AdminConfig):
    default_site = "pov.admin_site.PovAdminSite"
