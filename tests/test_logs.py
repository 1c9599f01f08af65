"""What a person reading the logs sees: phone numbers masked, addresses and URLs readable, no colour codes."""

from __future__ import annotations

import json
import logging

from assistant.logs import JsonFormatter


def line(message: str, *args) -> dict:
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, message, args, None)
    return json.loads(JsonFormatter().format(record))


def test_the_startup_banner_keeps_its_url_and_loses_its_colours():
    msg = line("\x1b[31m\x1b[1mWARNING: This is a development server.\x1b[0m\n * Running on http://127.0.0.1:5077")["msg"]
    assert "http://127.0.0.1:5077" in msg and "\x1b" not in msg


def test_phone_numbers_in_a_message_are_still_masked():
    msg = line("call %s or (617) 555-0142 from 10.0.0.12", "+16175550123")["msg"]
    assert "6175550123" not in msg and "555-0142" not in msg and "…23" in msg and "10.0.0.12" in msg
