from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from tenants import views
from tenants.forms import EmailAuthenticationForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="tenants/login.html",
            authentication_form=EmailAuthenticationForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Invitations link here to choose a password (Django's single-use, expiring reset token).
    path(
        "password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="tenants/password_set.html", success_url=reverse_lazy("login"), post_reset_login=False
        ),
        name="password_reset_confirm",
    ),
    # People who have an account already accept an invitation here (tenants.invitations).
    path("invitations/<str:token>/", views.invitation, name="invitation"),
]

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = [
    path("settings/", views.settings_page, name="settings"),
    path("settings/members/invite/", views.member_invite, name="member-invite"),
    path("settings/members/<uuid:member_id>/role/", views.member_role, name="member-role"),
    path("settings/keys/create/", views.key_create, name="key-create"),
    path("settings/keys/<uuid:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("settings/company/", views.company_update, name="company-update"),
]
