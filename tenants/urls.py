from django.conf import settings
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
    # Forgot your password: the same answer whether or not the address has an account (Django's view).
    path(
        "password/reset/",
        auth_views.PasswordResetView.as_view(
            template_name="tenants/password_reset.html",
            email_template_name="tenants/email/password_reset.txt",
            subject_template_name="tenants/email/password_reset_subject.txt",
            success_url=reverse_lazy("password_reset_done"),
            extra_email_context={"site_url": settings.SITE_URL.rstrip("/")},  # as every email's links
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="tenants/password_reset_sent.html"),
        name="password_reset_done",
    ),
    # Invitations and "forgot your password" link here to choose a password (Django's single-use, expiring
    # reset token); choosing it signs the person in.
    path(
        "password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="tenants/password_set.html",
            success_url=reverse_lazy("home"),
            post_reset_login=True,
            post_reset_login_backend="django.contrib.auth.backends.ModelBackend",
        ),
        name="password_reset_confirm",
    ),
    # People who have an account already accept an invitation here (tenants.invitations).
    path("invitations/<str:token>/", views.invitation, name="invitation"),
]

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = [
    path("settings/", views.settings_page, name="settings"),
    path("me/", views.me, name="me"),
    path("settings/members/invite/", views.member_invite, name="member-invite"),
    path("settings/members/<uuid:member_id>/role/", views.member_role, name="member-role"),
    path("settings/members/<uuid:member_id>/active/", views.member_active, name="member-active"),
    path("settings/members/<uuid:member_id>/invitation/", views.invitation_again, name="member-invitation"),
    path("settings/keys/create/", views.key_create, name="key-create"),
    path("settings/keys/<uuid:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("settings/company/", views.company_update, name="company-update"),
    path("setup/dismiss/", views.setup_dismissed, name="setup-dismiss"),
]
