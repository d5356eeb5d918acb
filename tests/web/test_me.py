"""Each member names themselves, and colleagues then see the name instead of the email."""

from tenants.models import User
from tests.web.test_pages import text


def test_a_member_sets_their_name_and_the_pages_show_it(acme, login):
    client = login(acme.members["owner"])
    assert client.get(acme.path("me/")).status_code == 200
    response = client.post(acme.path("me/"), {"first_name": "  Olga ", "last_name": "Owens"}, follow=True)
    assert "Your name is saved." in text(response)
    assert User.objects.get(pk=acme.members["owner"].user_id).get_full_name() == "Olga Owens"
    assert "Olga Owens · Engagement owner" in text(response)  # the header
    listed = text(login(acme.members["admin"]).get(acme.path("engagements/")))
    assert "Olga Owens" in listed


def test_a_name_that_is_too_long_or_has_control_characters_is_refused_by_label(acme, login):
    client = login(acme.members["viewer"])
    response = client.post(acme.path("me/"), {"first_name": "x" * 151, "last_name": "a\x07b"})
    assert response.status_code == 400
    page = text(response)
    assert "First name: At most 150 characters." in page and "Last name: Remove the control characters." in page
    assert User.objects.get(pk=acme.members["viewer"].user_id).get_full_name() == ""


def test_another_company_s_member_cannot_use_this_company_s_page(acme, charlie, login):
    response = login(charlie.members["owner"]).post(acme.path("me/"), {"first_name": "Mallory"})
    assert response.status_code == 404


def test_a_name_cannot_be_emptied_without_a_word(acme, login):
    client = login(acme.members["owner"])
    client.post(acme.path("me/"), {"first_name": "Olga", "last_name": "Owens"})
    response = client.post(acme.path("me/"), {"first_name": " ", "last_name": ""})
    assert response.status_code == 400
    assert "First name: Give a first or last name: without one, colleagues see your email." in text(response)
    assert User.objects.get(pk=acme.members["owner"].user_id).get_full_name() == "Olga Owens"
