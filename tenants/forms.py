"""Signing in: the email form, and what the sign-in throttle (django-axes) keys its counts on."""

from axes.backends import AxesStandaloneBackend
from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class SignInThrottleBackend(AxesStandaloneBackend):
    """Refuses sign-ins of a locked-out (email, address) pair; checks no password itself.

    Code that authenticates with no request at all (management commands, a shell) has no client
    address to count against and cannot be reached from outside, so it is not throttled.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def sign_in_name(request, credentials):
    """The email a sign-in attempt names, lower-cased: changing its case must not reset the count."""
    return ((credentials or {}).get("username") or request.POST.get("username") or "").strip().lower()


def client_ip(request):
    """The address of the client, for the throttle.

    Each of the TRUSTED_PROXY_COUNT proxies appends the address it received from to X-Forwarded-For,
    so the client is that many entries from the right; anything further left came from the client and
    may be forged. With no proxies, REMOTE_ADDR is the client.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
