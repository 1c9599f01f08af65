"""The phone simulator's routes with Flask's client: what the page says and what Start over may erase.
The page in a browser is tests/test_browser.py."""

from __future__ import annotations

import json

import pytest
from lxml import html

from .conftest import ALERTS, CARE_TEAM, text_sms


def page_of(response):
    return html.fromstring(response.data)


def test_the_page_says_which_number_is_which(sms_client):
    doc = page_of(sms_client.get("/"))
    shown = " ".join(doc.xpath("//dl[1]//text()"))
    assert "+16175550000" in shown and "TWILIO_FROM_NUMBER" in shown  # the hospital's SMS number
    assert CARE_TEAM in shown and "CARE_TEAM_PHONE" in shown
    assert "911" in shown and "EMERGENCY_NUMBER" in shown
    assert all(n in shown for n in ALERTS) and "ALERT_NUMBERS" in shown
    assert doc.xpath("//h1/text()") == ["Caregiver Assistant"]
    assert doc.xpath("//*[@id='log']/@aria-label") == ["Conversation with the assistant"]
    assert doc.xpath("//*[@id='log']/@role") == ["log"]


def test_an_unset_number_is_said_to_be_unset(client):
    shown = " ".join(page_of(client.get("/")).xpath("//dl[1]//text()"))
    assert "not set" in shown and "nobody is alerted" in shown


def test_a_reply_in_plain_words(sms_client):
    data = sms_client.post("/simulator/send", json={"from": "+15550100999", "text": "fiebre"}).json
    assert data["level"] == "call_now" and data["lang"] == "es" and data["dir"] == "ltr"
    assert data["badge"] == "Call now" and data["language"] == "Spanish (Español)"
    assert data["size"].endswith("special characters") or data["size"].endswith("standard characters")
    assert "queued for" in data["alerts"] and ALERTS[0] in data["alerts"]
    bubble = html.fromstring(f"<div>{data['html']}</div>")
    assert bubble.xpath("//div[contains(@class,'them')]/@lang") == ["es"]
    assert CARE_TEAM in bubble.xpath("//span[@class='num']/text()")  # a number never wraps at its hyphen


def test_arabic_comes_back_right_to_left(sms_client):
    data = sms_client.post("/simulator/send", json={"from": "+15550100998", "text": "عنده حمى"}).json
    assert data["dir"] == "rtl" and data["lang"] == "ar" and "\u2066" in data["reply"]


def test_an_opted_out_number_gets_a_note_not_a_reply(sms_client):
    sms_client.post("/simulator/send", json={"from": "+15550100997", "text": "STOP"})
    data = sms_client.post("/simulator/send", json={"from": "+15550100997", "text": "hello"}).json
    assert data["reply"] is None and "opted out" in data["note"]
    assert html.fromstring(data["html"]).xpath("//@class") == ["note"]


@pytest.mark.parametrize("sender", ["", "call me", "<script>", "+1" * 30])
def test_a_bad_sender_number_gets_a_clear_error(sms_client, sender):
    response = sms_client.post("/simulator/send", json={"from": sender or "x", "text": "hi"})
    assert response.status_code == 400 and "phone number must be digits" in response.json["error"]


def test_without_javascript_a_form_post_renders_the_conversation(sms_client):
    first = page_of(sms_client.post("/simulator/send", data={"from": "+15550100996", "text": "MENU"}))
    history = first.xpath("//input[@name='history']/@value")[0]
    second = page_of(sms_client.post("/simulator/send", data={"from": "+15550100996", "text": "9",
                                                               "history": history}))
    said = second.xpath("//div[@id='log']/div[contains(@class,'msg')]")
    assert [d.get("class") for d in said] == ["msg me", "msg them", "msg me", "msg them"]
    assert said[2].text_content() == "You sent: 9" and "fever" in said[3].text_content().lower()


def test_a_form_posted_again_is_the_same_text_not_a_second_escalation(sms_app, sms_client):
    # A browser's reload of the no-JavaScript page posts the same form again: the same answer, and the care
    # team is not alerted twice.
    from sqlalchemy import func, select

    from assistant.db import get_session
    from assistant.models import Alert, Escalation

    sid = page_of(sms_client.get("/")).xpath("//input[@name='sid']/@value")[0]
    form = {"from": "+15550100993", "text": "my son has a fever", "sid": sid, "history": "[]"}
    first, again = (page_of(sms_client.post("/simulator/send", data=form)) for _ in range(2))
    replies = [d.xpath("//div[contains(@class,'them')]")[0].text_content() for d in (first, again)]
    assert replies[0] == replies[1] and CARE_TEAM in replies[0]
    assert first.xpath("//input[@name='sid']/@value")[0] != sid  # the next text gets a new id
    with sms_app.app_context():
        session = get_session()
        assert session.scalar(select(func.count()).select_from(Escalation)) == 1
        assert session.scalar(select(func.count()).select_from(Alert)) == len(ALERTS)


def test_a_bad_number_in_the_form_keeps_what_was_typed(sms_client):
    response = sms_client.post("/simulator/send", data={"from": "call me", "text": "tiene fiebre"})
    doc = page_of(response)
    assert response.status_code == 400 and "phone number must be digits" in doc.text_content()
    assert doc.xpath("//input[@id='text']/@value") == ["tiene fiebre"]
    assert doc.xpath("//input[@id='from']/@value") == ["call me"]


def test_an_opted_out_symptom_says_it_was_escalated(sms_client):
    sms_client.post("/simulator/send", json={"from": "+15550100992", "text": "STOP"})
    data = sms_client.post("/simulator/send", json={"from": "+15550100992", "text": "my child has a fever"}).json
    shown = html.fromstring(f"<div>{data['html']}</div>")
    assert data["reply"] is None and "opted out" in shown.xpath("//p[@class='note']")[0].text_content()
    assert shown.xpath("//span[contains(@class,'badge')]/text()") == ["Call now"]
    assert "queued for" in shown.xpath("//span[@class='alerted']")[0].text_content()


def test_text_in_another_language_on_the_page_says_so(sms_client):
    doc = page_of(sms_client.get("/"))
    assert doc.xpath("//button[@name='try'][@value='عنده حمى']/@lang") == ["ar"]
    assert doc.xpath("//button[@name='try'][@value='عنده حمى']/@dir") == ["rtl"]
    data = sms_client.post("/simulator/send", json={"from": "+15550100991", "text": "عنده حمى"}).json
    own = html.fromstring(f"<div>{data['html']}</div>").xpath("//p[@class='meta']//span[@lang='ar']")
    assert [s.text_content() for s in own] == ["العربية"] and own[0].get("dir") == "rtl"
    assert "`" not in data["alerts"]


@pytest.mark.parametrize("history", ["not json", "{}", json.dumps([{"who": {"x": 1}}]), "[" * 15_000])
def test_a_broken_history_is_dropped_not_a_500(sms_client, history):
    response = sms_client.post("/simulator/send", data={"from": "+15550100995", "text": "MENU",
                                                         "history": history})
    assert response.status_code == 200
    assert len(page_of(response).xpath("//div[@id='log']/div[contains(@class,'msg')]")) == 2


def test_start_over_forgets_language_menu_and_opt_out(sms_client):
    number = "+15550100994"
    sms_client.post("/simulator/send", json={"from": number, "text": "LANG"})
    sms_client.post("/simulator/send", json={"from": number, "text": "2"})
    sms_client.post("/simulator/send", json={"from": number, "text": "STOP"})
    assert sms_client.post("/simulator/reset", json={"from": number}).json == {"reset": True}
    data = sms_client.post("/simulator/send", json={"from": number, "text": "HELP"}).json
    assert data["reply"] and data["locale"] == "en"
    response = sms_client.post("/simulator/reset", data={"from": number})  # the form, without JavaScript
    assert response.status_code == 303 and response.headers["Location"].endswith("from=%2B15550100994")


def test_start_over_never_erases_a_real_caregivers_opt_out(sms_client):
    number = "+15550100993"
    text_sms(sms_client, "STOP", sender=number)  # through Twilio
    response = sms_client.post("/simulator/reset", json={"from": number})
    assert response.status_code == 409 and "never erased" in response.json["error"]
    assert sms_client.post("/simulator/send", json={"from": number, "text": "fever"}).json["reply"] is None


def test_no_simulator_routes_in_production(database_url):
    from assistant import create_app

    app = create_app({"DATABASE_URL": database_url, "ASSISTANT_ENV": "production", "SECRET_KEY": "s" * 64,
                      "TWILIO_AUTH_TOKEN": "5f" * 16,
                      "PUBLIC_BASE_URL": "https://example.org", "CARE_TEAM_PHONE": "+16175550142",
                      "ALERT_NUMBERS": "+16175550100", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                      "TWILIO_FROM_NUMBER": "+16175550000"})
    client = app.test_client()
    assert client.post("/simulator/reset", json={"from": "+15550100992"}).status_code == 404
    assert client.post("/simulator/send", data={"text": "hi"}).status_code == 404
