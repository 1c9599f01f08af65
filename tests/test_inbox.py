"""The recorder: what a coordinator finds in the database after texts arrive together."""

import threading

import pytest
from sqlalchemy import select

from assistant.conversation import State
from assistant.db import make_engine
from assistant.inbox import Duplicate, Outcome, Recorder
from assistant.models import Alert, Escalation, InboundMessage, Sender, utcnow


def message(sid: str, phone: str, **extra) -> dict:
    return {"message_sid": sid, "phone": phone, "num_media": 0, "level": "none", "topic": None, "locale": "en",
            "reply": "Reply with a number", "received_at": utcnow(), **extra}


def sender(phone: str, locale: str = "es") -> dict:
    now = utcnow()
    return {"phone": phone, "locale": locale, "locale_explicit": True, "menu": "", "more": "", "opted_out": False,
            "updated_at": now, "created_at": now, "opted_out_at": None, "opted_in_at": None}


def escalation(sid: str, phone: str) -> dict:
    return {"level": "call_now", "locale": "en", "topic": "fever", "rules": "fever", "phone": phone,
            "text": "fever", "message_sid": sid, "created_at": utcnow()}


def stored(url: str, model) -> list:
    from sqlalchemy.orm import Session

    engine = make_engine(url)
    with Session(engine) as session:
        rows = list(session.scalars(select(model)))
    engine.dispose()
    return rows


@pytest.fixture
def recorders(database_url):
    """Recorders on the test database, as each worker process has one; closed afterwards."""
    made = []

    def make():
        made.append(Recorder(make_engine(database_url), make_engine(database_url, autocommit=True)))
        return made[-1]

    yield make
    for recorder in made:
        recorder.close()
        recorder.engine.dispose()
        recorder.read_engine.dispose()


def test_texts_that_arrive_together_share_a_commit_and_are_all_stored(database_url, recorders):
    recorder = recorders()
    outcome = Outcome("Reply with a number", "none", "menu", "en")
    for i in range(30):
        recorder.record(message(f"SM{i}", f"+1617555{i:04d}"), sender(f"+1617555{i:04d}"), outcome, State("es"))
    escalation_id = recorder.escalate(message("SMesc", "+16175559999", level="call_now"), sender("+16175559999"),
                                      outcome, State("es"), escalation("SMesc", "+16175559999"), ["+16175550001"])
    # The escalation's commit took the texts queued before it: all are there once it has returned.
    assert len(stored(database_url, InboundMessage)) == 31
    assert {s.locale for s in stored(database_url, Sender)} == {"es"}
    (alert,) = stored(database_url, Alert)
    assert alert.escalation_id == escalation_id and f"#{escalation_id}" in alert.body


def test_a_text_that_cannot_be_stored_does_not_keep_an_escalation_out(database_url, recorders):
    recorder = recorders()
    outcome = Outcome("x", "none", None, "en")
    # Both databases refuse an integer this large: that row fails, the one queued beside it must not.
    recorder.record(message("SMbad", "+16175550101", num_media=2**70), None, outcome, State())
    escalation_id = recorder.escalate(message("SMesc", "+16175550102", level="call_now"), None, outcome, State(),
                                      escalation("SMesc", "+16175550102"), ["+16175550001"])
    assert [e.id for e in stored(database_url, Escalation)] == [escalation_id]
    assert [m.message_sid for m in stored(database_url, InboundMessage)] == ["SMesc"]


def test_the_same_message_id_escalates_once(database_url, recorders):
    first, second = recorders(), recorders()  # two worker processes
    outcome = Outcome("CALL", "call_now", "fever", "en")
    args = (message("SMdup", "+16175550103", level="call_now"), None, outcome, State(),
            escalation("SMdup", "+16175550103"), ["+16175550001"])
    results = []

    def send(recorder):
        try:
            results.append(recorder.escalate(*args))
        except Duplicate:
            results.append("duplicate")

    threads = [threading.Thread(target=send, args=(r,)) for r in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str).count("duplicate") == 1
    assert len(stored(database_url, Escalation)) == 1 and len(stored(database_url, Alert)) == 1


def opt(phone: str, *, out: bool, at) -> dict:
    return {**sender(phone, "en"), "opted_out": out, "updated_at": at, "opted_out_at": at if out else None,
            "opted_in_at": None if out else at, "set_locale": False, "set_menu": False, "set_more": False}


def test_the_latest_of_stop_and_start_wins_whatever_order_they_are_written_in(database_url, recorders):
    from datetime import timedelta

    recorder = recorders()
    outcome = Outcome(None, "none", "stop", "en")
    now = utcnow()
    # START at now, then a STOP from a second earlier written late (a spool written back after recovery).
    recorder.record(message("SMstart", "+16175550104"), opt("+16175550104", out=False, at=now), outcome, State())
    assert recorder.flush()
    recorder.record(message("SMstop", "+16175550104"), opt("+16175550104", out=True, at=now - timedelta(seconds=1)),
                    outcome, State(opted_out=True))
    assert recorder.flush()
    (stored_sender,) = stored(database_url, Sender)
    assert not stored_sender.opted_out
    # A later STOP, then an older START: opted out.
    recorder.record(message("SMstop2", "+16175550104"), opt("+16175550104", out=True, at=now + timedelta(seconds=2)),
                    outcome, State(opted_out=True))
    recorder.record(message("SMstart2", "+16175550104"),
                    opt("+16175550104", out=False, at=now + timedelta(seconds=1)), outcome, State())
    assert recorder.flush()
    (stored_sender,) = stored(database_url, Sender)
    assert stored_sender.opted_out


def test_a_text_changes_only_its_own_fields(database_url, recorders):
    recorder = recorders()
    outcome = Outcome("x", "none", None, "en")
    recorder.record(message("SM1", "+16175550105"), sender("+16175550105", "es"), outcome, State("es"))
    assert recorder.flush()
    menu_only = {**sender("+16175550105", "en"), "menu": "topic:fever", "set_locale": False, "set_menu": True,
                 "set_more": False}
    recorder.record(message("SM2", "+16175550105"), menu_only, outcome, State())
    assert recorder.flush()
    (stored_sender,) = stored(database_url, Sender)
    assert (stored_sender.locale, stored_sender.menu) == ("es", "topic:fever")
