"""The engagement page shows what the customer expects at its top, and lets those who act change it (one
criterion a line); a viewer reads it, another company's engagement is not found."""

from engagement.models import Event, Note, Purchase
from tenants.scoping import tenant_scope
from tests.web.test_pages import text


def _criteria(world):
    with tenant_scope(world.tenant):
        return Purchase.objects.get(pk=world.engagement.purchase_id).success_criteria


def test_the_owner_writes_them_one_a_line_and_sees_them_at_the_top(acme, login):
    client = login(acme.members["owner"])
    detail = acme.path(f"engagements/{acme.engagement.id}/")
    assert "No success criteria yet" in text(client.get(detail))

    written = "Invoices out in one day\r\n\r\nTeam trained\r\n"
    response = client.post(detail + "criteria/", {"success_criteria": written})

    assert response.status_code == 302
    assert _criteria(acme) == ["Invoices out in one day", "Team trained"]
    page = text(client.get(detail))
    assert page.index("What the customer expects Invoices out in one day Team trained") < page.index("Customer id")
    assert "Success criteria: - Invoices out in one day - Team trained" in page  # on the timeline


def test_in_place_the_answer_says_it_was_saved_and_a_bad_list_why_not(acme, login):
    client = login(acme.members["service"])
    path = acme.path(f"engagements/{acme.engagement.id}/criteria/")

    saved = client.post(path, {"success_criteria": "Reports by Monday"}, HTTP_HX_REQUEST="true")
    too_many = "\n".join(f"Outcome {n}" for n in range(11))
    refused = client.post(path, {"success_criteria": too_many}, HTTP_HX_REQUEST="true")
    too_long = client.post(path, {"success_criteria": "ok\n" + "x" * 201}, HTTP_HX_REQUEST="true")

    assert saved.status_code == 200 and "Success criteria saved." in text(saved)
    assert "Not saved — Success criteria: Give at most 10 criteria." in text(refused)
    assert "Not saved — Criterion 2: Keep each criterion to 200 characters at most." in text(too_long)
    # What was typed stays in the box to be mended, not the stored criteria.
    assert "Outcome 10</textarea>" in refused.content.decode()
    assert _criteria(acme) == ["Reports by Monday"]


def test_a_semicolon_in_a_criterion_set_elsewhere_survives_an_edit_on_the_page(acme, login):
    with tenant_scope(acme.tenant):
        Purchase.objects.filter(pk=acme.engagement.purchase_id).update(success_criteria=["Invoices out; same day"])
    client = login(acme.members["owner"])
    detail = acme.path(f"engagements/{acme.engagement.id}/")
    assert "Invoices out; same day\n</textarea>" in client.get(detail).content.decode()

    client.post(detail + "criteria/", {"success_criteria": "Invoices out; same day\nTeam trained"})

    assert _criteria(acme) == ["Invoices out; same day", "Team trained"]


def test_a_viewer_reads_them_but_cannot_change_them(acme, login):
    client = login(acme.members["owner"])
    client.post(acme.path(f"engagements/{acme.engagement.id}/criteria/"), {"success_criteria": "Team trained"})
    viewer = login(acme.members["viewer"])

    page = text(viewer.get(acme.path(f"engagements/{acme.engagement.id}/")))
    refused = viewer.post(acme.path(f"engagements/{acme.engagement.id}/criteria/"), {"success_criteria": "Other"})

    assert "What the customer expects Team trained" in page and "Save criteria" not in page
    assert refused.status_code == 403
    assert _criteria(acme) == ["Team trained"]


def test_another_company_s_engagement_is_not_found(acme, charlie, login):
    client = login(acme.members["admin"])

    response = client.post(acme.path(f"engagements/{charlie.engagement.id}/criteria/"), {"success_criteria": "Mine"})

    assert response.status_code == 404
    assert _criteria(charlie) == []
    with tenant_scope(charlie.tenant):
        assert not Note.objects.exists()


def test_satisfaction_recorded_on_the_page_asks_about_each_criterion(acme, login):
    client = login(acme.members["owner"])
    detail = acme.path(f"engagements/{acme.engagement.id}/")
    client.post(detail + "criteria/", {"success_criteria": "Invoices out in one day\nTeam trained"})
    assert "Got: Team trained?" in text(client.get(detail))

    answers = {"criterion:Invoices out in one day": "yes", "criterion:Team trained": ""}
    client.post(detail + "satisfaction/", {"score": "4", "occurred_at": "", **answers})
    answers = {"criterion:Invoices out in one day": "no", "criterion:Team trained": "yes"}
    client.post(detail + "satisfaction/", {"score": "5", "occurred_at": "", **answers})

    with tenant_scope(acme.tenant):
        stored = list(Event.objects.filter(type="satisfaction").values_list("criteria_met", flat=True))
    assert stored == [{"Invoices out in one day": True}, {"Invoices out in one day": False, "Team trained": True}]
    page = text(client.get(detail))
    assert "Satisfaction 4/5 Invoices out in one day: yes" in page
    # In the order of the customer's criteria, whatever order the stored JSON keeps.
    assert "Satisfaction 5/5 Invoices out in one day: no Team trained: yes" in page
