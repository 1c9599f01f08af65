"""What a person reading the logs sees: phone numbers masked, addresses and URLs readable, no colour codes."""

from __future__ import annotations

import json
import logging

from assistant.logs import JsonFormatter

from .conftest import CAREGIVER, logged_text, post_signed


def line(message: str, *args) -> dict:
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, message, args, None)
    return json.loads(JsonFormatter().format(record))


def test_the_startup_banner_keeps_its_url_and_loses_its_colours():
    msg = line("\x1b[31m\x1b[1mWARNING: This is a development server.\x1b[0m\n * Running on http://127.0.0.1:5077")["msg"]
    assert "http://127.0.0.1:5077" in msg and "\x1b" not in msg


def test_phone_numbers_in_a_message_are_still_masked():
    msg = line("call %s or (617) 555-0142 from 10.0.0.12", "+16175550123")["msg"]
    assert "6175550123" not in msg and "555-0142" not in msg and "…23" in msg and "10.0.0.12" in msg


def test_a_calls_speech_is_never_logged(sms_client, caplog):
    # What a caller says is health information, like a text's body: no log line holds it, at any level.
    caplog.set_level(logging.DEBUG)
    call = {"CallSid": "CA" + "5" * 32, "From": CAREGIVER}
    post_signed(sms_client, "/voice", call)
    post_signed(sms_client, "/voice/language?n=1&page=1&try=0", {**call, "Digits": "1"})
    words = "my daughter Anastasia has a fever of 39.7"
    response = post_signed(sms_client, "/voice/answer?lang=en&n=2&try=0", {**call, "SpeechResult": words})
    assert b"<Dial" in response.data
    lines = [JsonFormatter().format(r) for r in caplog.records]
    logged = logged_text(caplog.records)
    assert "Anastasia" not in logged and "39.7" not in logged
    assert "6175550123" not in logged and "555-0123" not in logged
    assert any(json.loads(line).get("event") == "voice" for line in lines)
