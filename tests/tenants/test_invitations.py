"""Inviting someone who already has an account (at another company): the page answers as for anyone, they
get an email, and the company appears in their switcher only once they accept, signed in as themselves."""

import re

import pytest
from django.test import Client

from tenants.models import Member
from tenants.scoping import memberships_of, tenant_scope
from tests.factories import MemberFactory
from tests.web.conftest import build_world


@pytest.fixture
def acme(tenant, actor):
    return build_world(tenant, actor)


@pytest.fixture
def outsider(other_tenant):
    """Someone with an account at another company."""
    return MemberFactory(tenant=other_tenant, user__email="pat@charlie.test", role="owner")


def _invite(login, acme, email, role="sales"):
    return login(acme.members["admin"]).post(acme.path("settings/members/invite/"), {"email": email, "role": role})


def _link(message):
    return re.search(r"https?://[^/\s]+(/accounts/invitations/[^/\s]+/)", message.body).group(1)


def _as(user):
    user.refresh_from_db()  # the session must carry the stored password's hash (see the `login` fixture)
    client = Client()
    client.force_login(user)
    return client


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(acme, outsider, login, mailoutbox):
    for email in ("pat@charlie.test", "someone.new@example.test"):
        page = login(acme.members["admin"]).post(
            acme.path("settings/members/invite/"), {"email": email, "role": "sales"}, follow=True
        )
        assert f"Invitation sent to {email}." in page.content.decode()
        assert "already has an account" not in page.content.decode()
    assert [m.to for m in mailoutbox] == [["pat@charlie.test"], ["someone.new@example.test"]]


def test_nothing_of_the_company_shows_until_the_invitation_is_accepted(acme, outsider, login, mailoutbox):
    _invite(login, acme, "pat@charlie.test")
    assert acme.tenant not in [m.tenant for m in memberships_of(outsider.user)]
    pat = _as(outsider.user)
    assert pat.get(acme.path()).status_code == 404
    with tenant_scope(acme.tenant):
        pending = Member.objects.get(user=outsider.user)
    assert (pending.is_active, pending.invitation_pending) == (False, True)
    assert "invitation pending" in login(acme.members["admin"]).get(acme.path("settings/")).content.decode()

    link = _link(mailoutbox[0])
    page = pat.get(link)
    assert page.status_code == 200 and "Join Acme?" in page.content.decode()
    assert pat.get(acme.path()).status_code == 404, "opening the link accepted (a mail scanner could)"
    response = pat.post(link)
    assert response.status_code == 302 and response["Location"] == acme.path()
    assert pat.get(acme.path()).status_code == 200
    assert acme.tenant in [m.tenant for m in memberships_of(outsider.user)]
    assert pat.post(link).status_code == 404, "an accepted invitation is used up"


def test_only_the_invited_person_can_accept(acme, outsider, login, mailoutbox):
    _invite(login, acme, "pat@charlie.test")
    link = _link(mailoutbox[0])
    intruder = MemberFactory(tenant=outsider.tenant, user__email="eve@charlie.test")
    assert _as(intruder.user).post(link).status_code == 404
    assert Client().post(link).status_code == 302  # to the sign-in page
    tampered = link[:-3] + ("AA/" if not link.endswith("AA/") else "BB/")
    assert _as(outsider.user).post(tampered).status_code == 404
    with tenant_scope(acme.tenant):
        assert Member.objects.get(user=outsider.user).invitation_pending is True


def test_an_invitation_not_taken_up_can_be_resent_or_withdrawn(acme, outsider, login, mailoutbox):
    admin = login(acme.members["admin"])
    for email in ("pat@charlie.test", "new.person@acme.test"):
        _invite(login, acme, email)
    with tenant_scope(acme.tenant):
        pat = Member.objects.get(user__email="pat@charlie.test")
        new = Member.objects.get(user__email="new.person@acme.test")
    settings_page = admin.get(acme.path("settings/")).content.decode()
    assert settings_page.count(">Resend invitation</button>") == 2

    admin.post(acme.path(f"settings/members/{new.id}/invitation/"), {"action": "resend"})
    assert [m.to for m in mailoutbox][-1] == ["new.person@acme.test"] and len(mailoutbox) == 3
    assert re.search(r"/accounts/password/", mailoutbox[-1].body)

    page = admin.post(acme.path(f"settings/members/{pat.id}/invitation/"), {"action": "cancel"}, follow=True)
    assert "The invitation of pat@charlie.test is withdrawn." in page.content.decode()
    assert _as(outsider.user).post(_link(mailoutbox[0])).status_code == 404
    with tenant_scope(acme.tenant):
        assert not Member.objects.filter(pk=pat.pk).exists()


def test_a_member_who_joined_cannot_be_withdrawn(acme, login):
    owner = acme.members["owner"]
    owner.user.set_password("a-long-enough-password-1")
    owner.user.save()
    page = login(acme.members["admin"]).post(
        acme.path(f"settings/members/{owner.id}/invitation/"), {"action": "cancel"}, follow=True
    )
    assert "has joined already" in page.content.decode()
    with tenant_scope(acme.tenant):
        assert Member.objects.filter(pk=owner.pk).exists()
