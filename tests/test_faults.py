"""Nothing lost: a refused or stalled database, two workers racing, a killed worker, a slow or failing
Twilio API, odd fields, bad settings. Each test reproduces a failure of the reliability review
(../shared/reviews/reliability-2026-12.md, F1-F11) as a caregiver or the care team would see it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import create_engine, func, select, update

from assistant import ConfigurationError, alerts, create_app, inbox
from assistant.db import normalise_url, upgrade
from assistant.models import Alert, Escalation, InboundMessage, Sender, utcnow

from .conftest import (
    ACCOUNT_SID,
    ALERTS,
    AUTH_TOKEN,
    CARE_TEAM,
    PUBLIC_URL,
    close_app,
    fresh_schema,
    post_signed,
    text_sms,
    twilio_form,
)
from .pgproxy import PgProxy, proxied_url

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="needs TEST_DATABASE_URL (PostgreSQL behind the proxy)")



def answer_then_kill(script: str) -> None:
    """Run ``script`` in a child process until it prints "answered", then kill -9 it."""
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout.readline().strip() == "answered"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()

def messages(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/xml"
    root = etree.fromstring(response.data)
    assert root.tag == "Response"
    return root.xpath("/Response/Message/text()")


def phone() -> str:
    return "+1617555" + f"{uuid.uuid4().int % 10_000:04d}"


def make_app(url: str, fake_twilio, tmp_path: Path, name: str = "spool.db", **extra):
    return create_app({
        "TESTING": True, "DATABASE_URL": url, "SPOOL_PATH": str(tmp_path / name),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM_NUMBER": "+16175550000",
        "PUBLIC_BASE_URL": PUBLIC_URL, "ALERT_NUMBERS": ",".join(ALERTS), "CARE_TEAM_PHONE": CARE_TEAM,
        "TWILIO_API_BASE_URL": fake_twilio.url, **extra,
    })


def rows(url: str, model, *where) -> list:
    from sqlalchemy.orm import Session

    engine = create_engine(normalise_url(url))
    try:
        with Session(engine) as session:
            return list(session.scalars(select(model).where(*where)))
    finally:
        engine.dispose()


def wait_for(condition, timeout: float = 15.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


@pytest.fixture
def pg_url():
    """The test database with a fresh schema (PostgreSQL only: the proxy sits in front of it)."""
    if not PG_URL:
        pytest.skip("needs TEST_DATABASE_URL")
    fresh_schema(PG_URL)
    upgrade(PG_URL)
    return PG_URL


@pytest.fixture
def proxy():
    with PgProxy() as p:
        yield p


@pytest.fixture
def proxied(pg_url, proxy, fake_twilio, tmp_path, monkeypatch):
    """An app whose database is reached through the proxy; direct alerts after 0.5 s instead of 15."""
    monkeypatch.setattr(inbox, "DIRECT_ALERT_AFTER", 0.5, raising=False)
    app = make_app(proxied_url(pg_url, proxy.port), fake_twilio, tmp_path)
    yield app
    proxy.set("up")
    close_app(app)


# --- F1, F5, and the opted-out escalation: the database refuses ----------------------------------------

@needs_pg
def test_refused_database_every_escalation_recorded_once_staff_alerted_meanwhile(proxied, proxy, pg_url,
                                                                                  fake_twilio):
    client = proxied.test_client()
    opted_out_before, stops_during, caregiver = phone(), phone(), phone()
    assert messages(text_sms(client, "STOP", sender=opted_out_before)) == []
    proxy.set("refuse")

    started = time.monotonic()
    (reply,) = messages(text_sms(client, "my child has a fever", sender=caregiver))
    assert reply.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}") and time.monotonic() - started < 5
    assert messages(text_sms(client, "she has a fever", sender=opted_out_before)) == []  # never texted
    assert messages(text_sms(client, "STOP", sender=stops_during)) == []

    # Staff hear of both escalations while the database is still away: straight through Twilio.
    wait_for(lambda: len(fake_twilio.sent) == 2 * len(ALERTS))
    bodies = sorted(m["Body"] for m in fake_twilio.sent)
    assert sum("opted out of texts and got NO reply" in b for b in bodies) == len(ALERTS)
    assert {m["To"] for m in fake_twilio.sent} == set(ALERTS)

    proxy.set("up")
    recorder = proxied.extensions["recorder"]
    wait_for(lambda: recorder.spool.count() == 0)
    escalations = rows(pg_url, Escalation)
    assert sorted(e.phone for e in escalations) == sorted([caregiver, opted_out_before])
    outbox = rows(pg_url, Alert)
    assert len(outbox) == 2 * len(ALERTS) and {a.status for a in outbox} == {"sent"}
    assert {a.twilio_sid for a in outbox} == {m["Sid"] for m in fake_twilio.sent}
    assert alerts.run_once(proxied) == 0 and len(fake_twilio.sent) == 2 * len(ALERTS)  # none twice
    (stopped,) = rows(pg_url, Sender, Sender.phone == stops_during)
    assert stopped.opted_out and stopped.opted_out_at is not None
    assert messages(text_sms(client, "MENU", sender=stops_during)) == []  # the STOP holds afterwards
    assert messages(text_sms(client, "MENU", sender=opted_out_before)) == []


def test_a_record_is_either_written_back_or_alerted_directly_never_both_at_once(tmp_path):
    from assistant.spool import Spool

    spool = Spool(tmp_path / "spool.db")
    spool.put([("text", "SM1", {"escalation": {"phone": "+16175550123"}, "numbers": [ALERTS[0]]})])
    spool.put([("text", "SM1", {"escalation": {}, "numbers": []})])  # the same message again: kept once
    (record,) = spool.claim()  # a drainer is writing it into the database
    assert spool.awaiting_direct(0) == [] and not spool.claim_direct(record.id)
    spool.release(record.id)  # the database was away
    assert [r.id for r in spool.awaiting_direct(0)] == [record.id] and spool.claim_direct(record.id)
    assert spool.claim() == [] and not spool.claim_direct(record.id)  # held while the alert goes out
    spool.set_direct(record.id, {"state": "sent", "sids": {ALERTS[0]: "SMx"}})
    (again,) = spool.claim()
    assert again.direct["sids"] == {ALERTS[0]: "SMx"} and spool.awaiting_direct(0) == []


@needs_pg
def test_a_one_second_outage_loses_nothing(proxied, proxy, pg_url):
    client = proxied.test_client()
    before = phone()
    messages(text_sms(client, "fever", sender=before))
    proxy.set("refuse")
    during = [phone() for _ in range(3)]
    for number in during:
        (reply,) = messages(text_sms(client, "my son has chills", sender=number))
        assert CARE_TEAM in reply
    time.sleep(1)
    proxy.set("up")
    recorder = proxied.extensions["recorder"]
    wait_for(lambda: recorder.spool.count() == 0)
    assert sorted(e.phone for e in rows(pg_url, Escalation)) == sorted([before, *during])
    assert len(rows(pg_url, Alert)) == 4 * len(ALERTS)


@needs_pg
def test_a_restart_between_two_texts_is_not_taken_for_an_outage(proxied, proxy):
    client = proxied.test_client()
    messages(text_sms(client, "LANG es"))  # the connections kept by the app die with the restart
    assert proxied.extensions["recorder"].flush()  # written: the next text must read it
    proxy.set("refuse")
    proxy.set("up")
    (menu,) = messages(text_sms(client, "MENU"))  # read on a fresh connection: answered, in Spanish
    assert menu == messages(text_sms(client, "MENU"))[0] and not menu.startswith("Reply with a number")


@needs_pg
def test_status_callback_during_an_outage_is_kept_and_applied(proxied, proxy, pg_url, fake_twilio):
    client = proxied.test_client()
    text_sms(client, "fever")
    alerts.run_once(proxied)
    sid = fake_twilio.sent[0]["Sid"]
    proxy.set("refuse")
    form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    assert post_signed(client, "/sms/status", form).status_code == 204
    proxy.set("up")
    wait_for(lambda: proxied.extensions["recorder"].spool.count() == 0)
    (alert,) = rows(pg_url, Alert, Alert.twilio_sid == sid)
    assert alert.status == "delivered" and alert.delivered_at is not None


# --- F2: the database stalls (accepts, never answers) ----------------------------------------------------

@needs_pg
def test_stalled_database_symptom_answered_within_5_s_and_healthz_503_within_2_s(proxied, proxy, pg_url):
    client = proxied.test_client()
    messages(text_sms(client, "MENU"))  # the app holds connections now: they stall too
    proxy.set("stall")
    caregiver = phone()
    for body in ("my child has a fever", "she can't breathe"):
        started = time.monotonic()
        (reply,) = messages(text_sms(client, body, sender=caregiver))
        assert CARE_TEAM in reply and time.monotonic() - started < 5
    started = time.monotonic()
    health = client.get("/healthz")
    assert health.status_code == 503 and time.monotonic() - started < 2
    proxy.set("up")
    wait_for(lambda: len(rows(pg_url, Escalation)) == 2)
    wait_for(lambda: proxied.extensions["recorder"].spool.count() == 0)
    assert len(rows(pg_url, Escalation)) == 2 and len(rows(pg_url, Alert)) == 2 * len(ALERTS)
    assert client.get("/healthz").status_code == 200


# --- F3: odd fields ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"Body": "my child has a fever\x00"},
    {"From": "+1617555\x000123"},
    {"From": "+1" + "9" * 39},
    {"From": "messenger:" + "1" * 31},
    {"MessageSid": "SM" + "a" * 70},
    {"MessageSid": "SM\x00" + uuid.uuid4().hex},
])
def test_odd_fields_never_cost_the_escalation(sms_app, sms_client, fields):
    form = twilio_form("my child has a fever", sid="SM" + uuid.uuid4().hex)
    form.update(fields)
    (reply,) = messages(post_signed(sms_client, "/sms", form))
    assert reply.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")
    url = sms_app.config["DATABASE_URL"]
    (escalation,) = rows(url, Escalation)  # committed before the answer, not spooled
    assert "\x00" not in escalation.text and "fever" in escalation.text
    assert len(escalation.phone) <= 40 and len(escalation.message_sid) <= 64
    assert len(rows(url, Alert)) == len(ALERTS) and len(rows(url, InboundMessage)) == 1
    # A retry of the same odd sid is still recognised.
    assert messages(post_signed(sms_client, "/sms", form)) == [reply]
    assert len(rows(url, Escalation)) == 1


# --- F4: a STOP and another text at once, in two workers -------------------------------------------------

def test_a_stop_is_not_undone_by_a_text_read_before_it(database_url, fake_twilio, tmp_path):
    first, second = (make_app(database_url, fake_twilio, tmp_path, name) for name in ("a.db", "b.db"))
    try:
        number = phone()
        messages(text_sms(first.test_client(), "MENU", sender=number))  # a sender row exists
        assert first.extensions["recorder"].flush()
        recorder, read = second.extensions["recorder"], second.extensions["recorder"].read
        has_read, stopped = threading.Event(), threading.Event()

        def read_then_wait(*args):  # the second worker reads before the STOP and writes after it
            row = read(*args)
            has_read.set()
            stopped.wait(5)
            return row

        recorder.read = read_then_wait
        answers = []
        other = threading.Thread(target=lambda: answers.append(
            messages(text_sms(second.test_client(), "MAB", sender=number))))
        other.start()
        assert has_read.wait(5)
        assert messages(text_sms(first.test_client(), "STOP", sender=number)) == []
        assert first.extensions["recorder"].flush()
        stopped.set()
        other.join()
        recorder.read = read
        assert recorder.flush()
        (sender,) = rows(database_url, Sender, Sender.phone == number)
        assert sender.opted_out
        assert messages(text_sms(second.test_client(), "MENU", sender=number)) == []
    finally:
        close_app(first)
        close_app(second)


# --- F10: a worker killed right after answering a STOP ---------------------------------------------------

def test_an_answered_stop_survives_kill_9(database_url, tmp_path):
    numbers = [phone() for _ in range(5)]
    script = textwrap.dedent(f"""
        import sys, time
        from assistant import create_app
        app = create_app({{"TESTING": True, "DATABASE_URL": {database_url!r},
                          "SPOOL_PATH": {str(tmp_path / "spool.db")!r}, "CARE_TEAM_PHONE": "+1 617-555-0142"}})
        client = app.test_client()
        for n, number in enumerate({numbers!r}):
            response = client.post("/sms", data={{"MessageSid": f"SMkill{{n}}{uuid.uuid4().hex}", "From": number,
                                                  "Body": "STOP"}})
            assert b"<Message>" not in response.data
        print("answered", flush=True)
        time.sleep(60)
    """)
    answer_then_kill(script)
    stored = {s.phone: s.opted_out for s in rows(database_url, Sender)}
    assert stored == dict.fromkeys(numbers, True)


@needs_pg
def test_records_spooled_by_a_worker_killed_during_an_outage_are_written_by_the_next(pg_url, proxy, tmp_path,
                                                                                     fake_twilio):
    numbers = [phone() for _ in range(3)]
    url, spool = proxied_url(pg_url, proxy.port), str(tmp_path / "spool.db")
    script = textwrap.dedent(f"""
        import time
        from assistant import create_app
        app = create_app({{"TESTING": True, "DATABASE_URL": {url!r}, "SPOOL_PATH": {spool!r},
                          "CARE_TEAM_PHONE": "+1 617-555-0142", "ALERT_NUMBERS": "+16175550001"}})
        client = app.test_client()
        for n, (number, body) in enumerate(zip({numbers!r}, ["STOP", "my child has a fever", "STOP"])):
            client.post("/sms", data={{"MessageSid": f"SMspool{{n}}", "From": number, "Body": body}})
        print("answered", flush=True)
        time.sleep(60)
    """)
    proxy.set("refuse")
    answer_then_kill(script)
    proxy.set("up")
    successor = make_app(url, fake_twilio, tmp_path)  # another process on the same machine, same spool
    try:
        successor.test_client().get("/healthz")
        successor.extensions["recorder"].drain()
        stored = {s.phone: s.opted_out for s in rows(pg_url, Sender)}
        assert stored == {numbers[0]: True, numbers[2]: True}
        (escalation,) = rows(pg_url, Escalation)
        assert escalation.phone == numbers[1] and len(rows(pg_url, Alert)) == 1
        assert successor.extensions["recorder"].spool.count() == 0
    finally:
        close_app(successor)


# --- F6: a slow Twilio API, a database gone after Twilio accepted -------------------------------------------

def test_a_slow_twilio_api_does_not_lead_to_a_second_sms(sms_app, sms_client, fake_twilio, monkeypatch):
    monkeypatch.setattr(alerts, "LOCK_SECONDS", 1)
    monkeypatch.setattr(alerts, "TWILIO_TIMEOUT", 0.5, raising=False)  # the fix: a call gives up well before its claim
    sms_app.config["ALERT_NUMBERS"] = ALERTS[0]
    text_sms(sms_client, "fever")
    assert sms_app.extensions["recorder"].flush()
    fake_twilio.delays = [3.0]  # accepted at once, answered after the claim has expired
    first = threading.Thread(target=alerts.run_once, args=(sms_app, "w1"))
    first.start()
    time.sleep(1.5)
    alerts.run_once(sms_app, "w2")  # a second worker finds the alert
    first.join()
    with sms_app.extensions["sessionmaker"]() as session, session.begin():
        session.execute(update(Alert).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    alerts.run_once(sms_app, "w2")  # due again: looked up at Twilio, found, not sent again
    assert len(fake_twilio.sent) == 1
    with sms_app.extensions["sessionmaker"]() as session:
        (alert,) = session.scalars(select(Alert)).all()
    assert alert.status == "sent" and alert.twilio_sid == fake_twilio.sent[0]["Sid"]


def test_a_database_gone_after_twilio_accepted_does_not_lead_to_a_second_sms(sms_app, sms_client, fake_twilio):
    from sqlalchemy.exc import OperationalError

    sms_app.config["ALERT_NUMBERS"] = ALERTS[0]
    text_sms(sms_client, "fever")
    assert sms_app.extensions["recorder"].flush()
    factory = sms_app.extensions["sessionmaker"]
    gone = threading.Event()
    fake_twilio.on_send = lambda form: gone.set()

    def flaky_factory():
        if gone.is_set():
            gone.clear()
            raise OperationalError("update", {}, Exception("connection refused"))
        return factory()

    with pytest.raises(OperationalError):
        alerts.send(flaky_factory, alerts.twilio_client(sms_app.config), sms_app.config,
                    alerts.claim(factory, "w1")[0])
    with factory() as session, session.begin():  # the claim expires
        session.execute(update(Alert).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert alerts.run_once(sms_app, "w2") == 1
    assert len(fake_twilio.sent) == 1
    with factory() as session:
        (alert,) = session.scalars(select(Alert)).all()
    assert alert.status == "sent" and alert.twilio_sid == fake_twilio.sent[0]["Sid"]


# --- F11: a failed alert goes to the next on-call number -----------------------------------------------------

def test_an_undelivered_alert_goes_to_the_next_number_and_shows_failed(sms_app, sms_client, fake_twilio):
    backup = "+16175550003"
    sms_app.config.update(ALERT_NUMBERS=ALERTS[0], ALERT_BACKUP_NUMBERS=backup)
    text_sms(sms_client, "fever")
    alerts.run_once(sms_app)
    (first,) = fake_twilio.sent
    form = {"MessageSid": first["Sid"], "MessageStatus": "undelivered", "ErrorCode": "30003",
            "AccountSid": ACCOUNT_SID}
    assert post_signed(sms_client, "/sms/status", form).status_code == 204
    assert alerts.run_once(sms_app) == 1
    assert [m["To"] for m in fake_twilio.sent] == [ALERTS[0], backup]
    with sms_app.extensions["sessionmaker"]() as session:
        outbox = {a.to_number: a.status for a in session.scalars(select(Alert))}
    assert outbox == {ALERTS[0]: "undelivered", backup: "sent"}


def test_a_refused_alert_goes_to_the_next_number(sms_app, sms_client, fake_twilio):
    backup = "+16175550003"
    sms_app.config.update(ALERT_NUMBERS=ALERTS[0], ALERT_BACKUP_NUMBERS=backup)
    text_sms(sms_client, "fever")
    fake_twilio.failures = [(400, 21211)]
    alerts.run_once(sms_app)
    assert [m["To"] for m in fake_twilio.sent] == [backup]
    with sms_app.extensions["sessionmaker"]() as session:
        outbox = {a.to_number: a.status for a in session.scalars(select(Alert))}
    assert outbox == {ALERTS[0]: "failed", backup: "sent"}


# --- the opted-out caregiver's symptom ----------------------------------------------------------------------

def test_opted_out_symptom_no_sms_but_staff_told_to_call(sms_app, sms_client, fake_twilio):
    assert messages(text_sms(sms_client, "STOP")) == []
    assert messages(text_sms(sms_client, "my son has a fever")) == []
    alerts.run_once(sms_app)
    assert len(fake_twilio.sent) == len(ALERTS)
    assert all("opted out of texts and got NO reply" in m["Body"] for m in fake_twilio.sent)
    assert len(rows(sms_app.config["DATABASE_URL"], Escalation)) == 1


# --- F7, F8: settings ------------------------------------------------------------------------------------

PRODUCTION = {"ASSISTANT_ENV": "production", "SECRET_KEY": "s" * 64,
              "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": PUBLIC_URL,
              "CARE_TEAM_PHONE": CARE_TEAM, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "ALERT_NUMBERS": ",".join(ALERTS),
              "TWILIO_FROM_NUMBER": "+16175550000"}


@pytest.mark.parametrize("env", ["Production", "PRODUCTION", "prod", "production ", "staging"])
def test_unknown_environment_refuses_to_start(env, tmp_path):
    with pytest.raises(ConfigurationError, match="ASSISTANT_ENV"):
        create_app({**PRODUCTION, "ASSISTANT_ENV": env, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})


@pytest.mark.parametrize(("key", "value"), [
    ("CARE_TEAM_PHONE", " "), ("CARE_TEAM_PHONE", "TBD"), ("CARE_TEAM_PHONE", "555-0100"),
    ("CARE_TEAM_PHONE", "call us"), ("TWILIO_AUTH_TOKEN", " "), ("TWILIO_AUTH_TOKEN", "x"),
    ("TWILIO_AUTH_TOKEN", "changeme"), ("PUBLIC_BASE_URL", "rel.example.org"), ("PUBLIC_BASE_URL", "https://"),
    ("ALERT_NUMBERS", ""), ("ALERT_NUMBERS", "+1617555000"), ("TWILIO_ACCOUNT_SID", ""),
    ("TWILIO_ACCOUNT_SID", "ACxxx"), ("TWILIO_FROM_NUMBER", ""), ("ALERT_BACKUP_NUMBERS", "pager"),
])
def test_production_refuses_blank_placeholder_or_malformed_settings(key, value, tmp_path):
    with pytest.raises(ConfigurationError, match=key):
        create_app({**PRODUCTION, key: value, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})


def test_production_starts_with_good_settings(tmp_path):
    app = create_app({**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})
    assert app.test_client().get("/").status_code == 404  # no simulator


# --- F9: request size ------------------------------------------------------------------------------------

def test_large_bodies_are_refused_before_parsing_or_signature(sms_client, monkeypatch):
    from assistant import webhooks

    checked = []
    monkeypatch.setattr(webhooks, "_signed_by_twilio", lambda *a: checked.append(a) or False)
    response = sms_client.post("/sms", data=b"Body=" + b"a" * 1_000_000,
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and checked == []
    many = "&".join(f"f{i}=x" for i in range(20_000)).encode()
    assert sms_client.post("/sms", data=many, content_type="application/x-www-form-urlencoded").status_code == 413
    assert checked == []


# --- newcomer finding 1: the quick-start server (a thread per request) -----------------------------------------

def test_quick_start_server_keeps_answering(tmp_path):
    from werkzeug.serving import make_server

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
                      "SPOOL_PATH": str(tmp_path / "spool.db"), "CARE_TEAM_PHONE": CARE_TEAM})
    upgrade(app.config["DATABASE_URL"])
    server = make_server("127.0.0.1", 0, app, threaded=True)  # what `assistant run` serves with
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        import json
        import urllib.request

        def send(number: str, body: str) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/simulator/send",
                                             data=json.dumps({"from": number, "text": body}).encode(),
                                             headers={"Content-Type": "application/json"})
            started = time.monotonic()
            with urllib.request.urlopen(request, timeout=40) as response:
                data = json.load(response)
            assert time.monotonic() - started < 1.5, "the server stalled"
            return data

        assert send("+15550109999", "STOP")["reply"] is None
        for i in range(40):
            assert send(f"+1555010{i:04d}", "MENU")["reply"].startswith("Reply with a number")
        assert send("+15550109999", "hello?")["reply"] is None  # still opted out: its state was read
    finally:
        server.shutdown()
        close_app(app)


# --- property: any fields, always valid TwiML, never a 5xx, never a lost escalation ---------------------------

def test_any_fields_valid_twiml_and_every_escalation_recorded(sms_app, sms_client):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from assistant.conversation import State
    from assistant.inbox import clean

    assistant = sms_app.extensions["assistant"]
    url = sms_app.config["DATABASE_URL"]
    chars = st.characters(blacklist_categories=("Cs",))  # the form encoder cannot send lone surrogates
    symptoms = st.sampled_from(["", "my child has a fever", "she can't breathe", "chills", "fiebre", "MENU", "STOP"])

    @settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 40)), deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(before=st.text(chars, max_size=60), symptom=symptoms, after=st.text(chars, max_size=60),
           sender=st.one_of(st.just("+16175550123"), st.text(chars, max_size=60)),
           sid=st.text(chars, max_size=90), media=st.text(chars, max_size=5),
           extra=st.dictionaries(st.text("abcXYZ", min_size=1, max_size=8), st.text(chars, max_size=20), max_size=3))
    def check(before, symptom, after, sender, sid, media, extra):
        body = f"{before} {symptom} {after}"
        sid = f"{sid}-{uuid.uuid4().hex}"
        form = {**extra, **twilio_form(body, sid=sid, sender=sender), "NumMedia": media}
        response = post_signed(sms_client, "/sms", form)
        assert response.status_code == 200
        messages(response)  # valid TwiML
        if assistant.reply(clean(body), State()).finding.escalates:
            stored = rows(url, Escalation, Escalation.message_sid == clean(sid, 64))
            assert len(stored) == 1, "escalation lost"
            assert rows(url, Alert, Alert.escalation_id == stored[0].id)

    check()
    with sms_app.extensions["sessionmaker"]() as session:
        assert session.scalar(select(func.count()).select_from(Escalation)) >= 0
    assert sms_app.extensions["recorder"].spool.count() == 0  # all written directly, nothing waiting
