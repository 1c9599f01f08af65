"""The SMS webhook as Twilio calls it: signed requests, TwiML checked with XPath, rows in a real database."""

import logging
import uuid

import pytest
from lxml import etree
from sqlalchemy import func, select

from assistant.models import Alert, Escalation, InboundMessage, Sender

from .conftest import (
    ACCOUNT_SID,
    ALERTS,
    AUTH_TOKEN,
    CARE_TEAM,
    CAREGIVER,
    PUBLIC_URL,
    logged_text,
    post_signed,
    text_sms,
    twilio_form,
)


def messages(response) -> list[str]:
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    root = etree.fromstring(response.data)
    assert root.tag == "Response"
    return root.xpath("/Response/Message/text()")


def db(app):
    """A session on the app's database, once the background recorder has written what it was given."""
    assert app.extensions["recorder"].flush()
    return app.extensions["sessionmaker"]()


def count(app, model) -> int:
    with db(app) as session:
        return session.scalar(select(func.count()).select_from(model))


# --- signatures -------------------------------------------------------------------------------------

def test_missing_signature_is_forbidden(sms_client):
    assert sms_client.post("/sms", data=twilio_form("fever", sid="SM1")).status_code == 403


def test_wrong_token_is_forbidden(sms_client):
    assert post_signed(sms_client, "/sms", twilio_form("fever", sid="SM1"), token="0" * 32).status_code == 403


def test_tampered_body_is_forbidden(sms_client):
    form = twilio_form("MENU", sid="SM1")
    from twilio.request_validator import RequestValidator

    from .conftest import AUTH_TOKEN

    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + "/sms", form)
    form["Body"] = "STOP"
    assert sms_client.post("/sms", data=form, headers={"X-Twilio-Signature": signature}).status_code == 403


def test_signature_for_the_internal_url_is_refused_behind_a_proxy(sms_client):
    # Twilio signs the public URL; a signature over the app's own view of the URL is not Twilio's.
    form = twilio_form("MENU", sid="SM1")
    assert post_signed(sms_client, "/sms", form, url="http://localhost/sms").status_code == 403


def test_public_url_with_query_string(sms_client):
    form = twilio_form("MENU", sid="SM2")
    from twilio.request_validator import RequestValidator

    from .conftest import AUTH_TOKEN

    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + "/sms?clinic=oncology", form)
    response = sms_client.post("/sms?clinic=oncology", data=form, headers={"X-Twilio-Signature": signature})
    assert messages(response)[0].startswith("Reply with a number")


def test_status_callback_needs_a_signature(sms_client):
    assert sms_client.post("/sms/status", data={"MessageSid": "SMx", "MessageStatus": "delivered"}).status_code == 403


# --- commands -----------------------------------------------------------------------------------------

def test_help(sms_client):
    (reply,) = messages(text_sms(sms_client, "HELP"))
    assert "Not for emergencies" in reply and CARE_TEAM in reply and "911" in reply


@pytest.mark.parametrize(("word", "locale"), [("AYUDA", "es"), ("aide", "fr"), ("帮助", "zh_Hans")])
def test_help_in_other_languages(sms_client, sms_app, word, locale):
    (reply,) = messages(text_sms(sms_client, word))
    help_text = sms_app.extensions["assistant"].store.current.texts[locale]["text:help"].string
    assert reply.startswith(help_text.split("{")[0].strip()[:30])
    assert CARE_TEAM in reply


def test_menu_then_digit(sms_client):
    (menu,) = messages(text_sms(sms_client, "MENU"))
    assert menu.startswith("Reply with a number: 1) Immunotherapy")
    (pick,) = messages(text_sms(sms_client, "5"))
    assert pick.startswith("Monoclonal antibodies")


def test_language_is_remembered(sms_client, sms_app):
    (menu,) = messages(text_sms(sms_client, "LANG"))
    assert "Español" in menu and "中文" in menu
    (chosen,) = messages(text_sms(sms_client, "2"))
    assert chosen == sms_app.extensions["assistant"].store.current.texts["es"]["text:language.set"].string
    with db(sms_app) as session:
        sender = session.get(Sender, CAREGIVER)
        assert (sender.locale, sender.locale_explicit) == ("es", True)
    (mab,) = messages(text_sms(sms_client, "MAB"))
    assert mab.startswith(sms_app.extensions["assistant"].store.current.texts["es"]["topic:mab:summary"].string[:30])


def test_idioma_with_a_name(sms_client, sms_app):
    messages(text_sms(sms_client, "IDIOMA español"))
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).locale == "es"


def test_more(sms_client, sms_app):
    messages(text_sms(sms_client, "LANG ru"))
    (menu,) = messages(text_sms(sms_client, "MENU"))
    hint = sms_app.extensions["assistant"].store.current.texts["ru"]["text:more.hint"].string
    assert menu.endswith(hint)
    (rest,) = messages(text_sms(sms_client, "MORE"))
    assert rest and rest != menu


def test_more_goes_on_in_the_language_of_the_answer_it_continues(sms_client, sms_app):
    # The newcomer's finding: a sender who chose Spanish asks in English, then texts MORE.
    messages(text_sms(sms_client, "LANG 2"))
    (answer,) = messages(text_sms(sms_client, "what is obinutuzumab"))
    assert answer.startswith("Monoclonal antibodies")
    (more,) = messages(text_sms(sms_client, "MORE"))
    assert more == sms_app.extensions["assistant"].store.current.texts["en"]["text:more.none"].string
    with db(sms_app) as session:
        sender = session.get(Sender, CAREGIVER)
        assert (sender.locale, sender.locale_explicit, sender.reply_locale) == ("es", True, "en")
    (menu,) = messages(text_sms(sms_client, "MENU"))  # their chosen language otherwise
    assert menu.startswith("Responda con un número")


def test_stop_records_opt_out_and_sends_nothing_until_start(sms_client, sms_app):
    assert messages(text_sms(sms_client, "STOP")) == []
    with db(sms_app) as session:
        sender = session.get(Sender, CAREGIVER)
        assert sender.opted_out and sender.opted_out_at is not None
    assert messages(text_sms(sms_client, "MENU")) == []
    assert messages(text_sms(sms_client, "my son has a fever")) == []
    assert count(sms_app, Escalation) == 1  # still recorded for the care team
    (back,) = messages(text_sms(sms_client, "START"))
    assert back.startswith("You will get texts again")
    with db(sms_app) as session:
        sender = session.get(Sender, CAREGIVER)
        assert not sender.opted_out and sender.opted_in_at is not None
    assert messages(text_sms(sms_client, "MENU"))


@pytest.mark.parametrize(("word", "come_back"), [("PARAR", "START"), ("arrêter", "START")])
def test_localised_stop_words(sms_client, sms_app, word, come_back):
    # The carrier confirms only its own English words: a localized opt-out gets one confirmation from us,
    # in that language, with how to come back and both numbers; then nothing more.
    (confirmation,) = messages(text_sms(sms_client, word))
    assert come_back in confirmation and CARE_TEAM in confirmation and "911" in confirmation
    assert messages(text_sms(sms_client, "fever")) == []
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).opted_out


# --- escalations --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "level", "start"),
    [("she is not breathing", "emergency", "CALL 911 NOW"),
     ("my son has a temp of 38,5", "call_now", f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}"),
     ("tiene fiebre", "call_now", "LLAME")],
)
def test_escalation_reply_record_and_alerts(sms_client, sms_app, body, level, start):
    (reply,) = messages(text_sms(sms_client, body))
    assert reply.startswith(start) and CARE_TEAM in reply
    with db(sms_app) as session:
        (escalation,) = session.scalars(select(Escalation)).all()
        assert (escalation.level, escalation.phone, escalation.text) == (level, CAREGIVER, body)
        alerts = session.scalars(select(Alert).order_by(Alert.to_number)).all()
        assert [a.to_number for a in alerts] == list(ALERTS)
        assert all(a.status == "pending" for a in alerts)
        assert body not in alerts[0].body and CAREGIVER in alerts[0].body  # how to reach them, not what they said


def test_info_creates_no_escalation(sms_client, sms_app):
    (reply,) = messages(text_sms(sms_client, "what is a cancer vaccine"))
    assert reply.startswith("Cancer vaccines")
    assert count(sms_app, Escalation) == 0 and count(sms_app, Alert) == 0


def test_twilio_retry_gets_the_same_reply_and_no_second_alert(sms_client, sms_app):
    sid = "SM" + uuid.uuid4().hex
    first = messages(text_sms(sms_client, "fever", sid=sid))
    second = messages(text_sms(sms_client, "fever", sid=sid))
    assert first == second
    assert count(sms_app, InboundMessage) == 1
    assert count(sms_app, Escalation) == 1
    assert count(sms_app, Alert) == len(ALERTS)


def test_retry_of_a_menu_choice_does_not_move_on(sms_client):
    messages(text_sms(sms_client, "MENU"))
    sid = "SM" + uuid.uuid4().hex
    assert messages(text_sms(sms_client, "3", sid=sid)) == messages(text_sms(sms_client, "3", sid=sid))


# --- hostile bodies -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["", " ", "😀🤒", "\x00\x01\x1b[31m", "<Response><Message>x</Message></Response>",
                                  "]]><!ENTITY x SYSTEM 'file:///etc/passwd'>", "&amp;&lt;", "a" * 10_000,
                                  "fever " + "b" * 10_000, "\u202eevif", "Ω" * 2000])
def test_hostile_bodies_get_valid_twiml(sms_client, body):
    replies = messages(text_sms(sms_client, body))
    assert len(replies) == 1 and CARE_TEAM in replies[0]


def test_picture_without_text(sms_client):
    (reply,) = messages(text_sms(sms_client, "", media=2))
    assert reply.startswith("I can only read text")


def test_absurd_media_count_still_escalates_and_is_recorded(sms_client, sms_app):
    (reply,) = messages(text_sms(sms_client, "fever", media=0, NumMedia="9" * 30))
    assert reply.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")
    assert count(sms_app, Escalation) == 1


def test_unknown_fields_are_ignored(sms_client):
    form = twilio_form("MENU", sid="SM" + uuid.uuid4().hex, OptOutType="", NewField="whatever",
                       MessagingServiceSid="MG1")
    assert messages(post_signed(sms_client, "/sms", form))[0].startswith("Reply with a number")


# --- fail-safe ----------------------------------------------------------------------------------------

def test_database_down_still_escalates_and_the_escalation_is_written_once_it_is_back(sms_app, sms_client,
                                                                                      monkeypatch):
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("connect", {}, Exception("connection refused"))

    with monkeypatch.context() as m:
        m.setattr(Engine, "raw_connection", down)  # every read and write of the app
        (reply,) = messages(text_sms(sms_client, "he is not breathing"))
        assert reply.startswith("CALL 911 NOW") and CARE_TEAM in reply
        # Not knowing whether this number opted out before the outage, nothing but an escalation is sent.
        assert messages(text_sms(sms_client, "MENU")) == []
    recorder = sms_app.extensions["recorder"]
    assert recorder.flush() and recorder.spool.count() == 2
    recorder.drain()
    assert recorder.spool.count() == 0
    with db(sms_app) as session:
        (escalation,) = session.scalars(select(Escalation)).all()
        assert escalation.level == "emergency" and escalation.text == "he is not breathing"
        assert sorted(a.to_number for a in session.scalars(select(Alert))) == sorted(ALERTS)
    recorder.drain()  # nothing twice
    assert count(sms_app, Escalation) == 1 and count(sms_app, Alert) == len(ALERTS)
    assert count(sms_app, InboundMessage) == 2


def test_escalation_is_stored_before_the_answer_leaves(sms_app, sms_client):
    (reply,) = messages(text_sms(sms_client, "my son has a fever"))
    assert reply.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")
    with sms_app.extensions["sessionmaker"]() as session:  # no flush: it must be there already
        (escalation,) = session.scalars(select(Escalation)).all()
        assert escalation.level == "call_now"
        assert session.scalar(select(func.count()).select_from(Alert)) == len(ALERTS)


def test_unreachable_database_at_start_still_answers(fake_twilio, tmp_path):
    from assistant import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
                      "CARE_TEAM_PHONE": CARE_TEAM, "SPOOL_PATH": str(tmp_path / "spool.db")})
    response = app.test_client().post("/sms", data=twilio_form("fiebre", sid="SM9"))
    (reply,) = messages(response)
    assert reply.startswith("LLAME") and CARE_TEAM in reply
    assert app.test_client().get("/healthz").status_code == 503


def test_catalog_failure_still_escalates(sms_app, sms_client, monkeypatch):
    catalog = sms_app.extensions["assistant"].store.current
    monkeypatch.setattr(type(catalog), "text", lambda *a, **k: 1 / 0)
    (reply,) = messages(text_sms(sms_client, "my son has a fever"))
    assert reply.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")
    assert count(sms_app, Escalation) == 1


def test_any_other_failure_still_answers_with_the_number(sms_app, sms_client, monkeypatch):
    monkeypatch.setattr(sms_app.extensions["assistant"], "reply", lambda *a, **k: 1 / 0)
    (reply,) = messages(text_sms(sms_client, "fever"))
    assert CARE_TEAM in reply and "911" in reply


def test_a_failure_around_the_core_still_escalates_and_alerts(sms_app, sms_client, monkeypatch):
    """Triage does not depend on the part of the inbox that failed (here its memory of senders)."""
    from assistant.inbox import Recorder

    def broken(self, phone):
        raise RuntimeError("memory lost")

    monkeypatch.setattr(Recorder, "state", broken)
    (reply,) = messages(text_sms(sms_client, "she can't breathe"))
    assert reply.startswith("CALL 911 NOW") and CARE_TEAM in reply
    (other,) = messages(text_sms(sms_client, "what is a cancer vaccine"))
    assert CARE_TEAM in other and "911" in other
    monkeypatch.undo()
    assert count(sms_app, Escalation) == 1 and count(sms_app, Alert) == len(ALERTS)


# --- logs ---------------------------------------------------------------------------------------------

def test_logs_mask_numbers_and_never_hold_the_text(sms_client, caplog):
    caplog.set_level(logging.DEBUG)
    messages(text_sms(sms_client, "my daughter Anastasia has a fever of 39.7"))
    logged = logged_text(caplog.records)
    assert "Anastasia" not in logged and "39.7" not in logged
    assert CAREGIVER not in logged and "6175550123" not in logged
    assert any(getattr(r, "event", None) == "escalation" for r in caplog.records)


# --- running it ---------------------------------------------------------------------------------------

def test_healthz(sms_client):
    response = sms_client.get("/healthz")
    assert response.status_code == 200 and response.json["database"] == "ok"


def test_simulator_shows_what_the_phone_shows(sms_client):
    page = sms_client.get("/")
    assert page.status_code == 200 and b"Phone simulator" in page.data
    data = sms_client.post("/simulator/send", json={"from": "+15550100999", "text": "LANG"}).json
    assert data["topic"] == "language" and "Español" in data["reply"]
    data = sms_client.post("/simulator/send", json={"from": "+15550100999", "text": "2"}).json
    assert data["locale"] == "es" and data["segments"] >= 1 and data["encoding"] in ("GSM-7", "UCS-2")


def test_no_simulator_in_production(database_url):
    from assistant import create_app

    app = create_app({"ASSISTANT_ENV": "production", "SECRET_KEY": "s" * 64,
                      "DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                      "PUBLIC_BASE_URL": PUBLIC_URL, "CARE_TEAM_PHONE": CARE_TEAM, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                      "ALERT_NUMBERS": ",".join(ALERTS), "TWILIO_FROM_NUMBER": "+16175550000"})
    assert app.test_client().get("/").status_code == 404
    assert app.test_client().post("/simulator/send", json={"text": "hi"}).status_code == 404


def test_production_refuses_to_start_without_its_settings(database_url):
    from assistant import ConfigurationError, create_app

    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        create_app({"ASSISTANT_ENV": "production", "DATABASE_URL": database_url})


def test_migrations_are_safe_to_run_twice(database_url, runner):
    from assistant.db import upgrade

    upgrade(database_url)
    upgrade(database_url)


def test_sqlite_folder_is_created_on_a_fresh_checkout(tmp_path):
    from assistant import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'assistant.db'}"})
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "instance" / "assistant.db").exists()


def test_log_lines_are_json_and_warnings_are_not_held_back(tmp_path):
    import json

    from assistant.logs import BatchedHandler, JsonFormatter

    path = tmp_path / "log"
    with path.open("wb") as out:
        handler = BatchedHandler(out.fileno(), interval=60)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("test.batched")
        logger.addHandler(handler)
        logger.propagate, logger.level = False, logging.INFO
        try:
            logger.info("inbound", extra={"event": "inbound", "phone": "…23"})
            assert path.read_text() == ""  # waits for company
            logger.warning("escalation", extra={"event": "escalation"})  # written at once, after the INFO
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            assert [(r["level"], r["event"]) for r in lines] == [("info", "inbound"), ("warning", "escalation")]
            logger.info("call from +1 617 555 0123")
            handler.flush()
            assert "…23" in path.read_text().splitlines()[-1] and "555 0123" not in path.read_text()
        finally:
            logger.removeHandler(handler)


def test_other_log_formats_still_work(sms_app):
    # gunicorn's own lines are "[%(process)d] [%(levelname)s] %(message)s": the set-up must not blank them.
    record = logging.getLogger("gunicorn.error").makeRecord("gunicorn.error", logging.INFO, __file__, 1,
                                                            "Booting worker", (), None)
    line = logging.Formatter("[%(process)d] [%(levelname)s] %(message)s").format(record)
    assert line.endswith("[INFO] Booting worker") and line[1:].split("]")[0].isdigit()
