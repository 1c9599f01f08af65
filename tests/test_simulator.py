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
