"""Caregivers' words and numbers are deleted after MESSAGE_RETENTION_DAYS; counts and opt-outs stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from assistant.db import get_session
from assistant.models import Acknowledgement, Alert, Escalation, InboundMessage, Sender, utcnow
from assistant.retention import purge

from .conftest import text_sms


def test_old_words_and_numbers_go_counts_and_opt_outs_stay(sms_app, sms_client):
    text_sms(sms_client, "my son has a fever", sender="+16175550101")
    text_sms(sms_client, "MENU", sender="+16175550102")
    text_sms(sms_client, "STOP", sender="+16175550103")
    text_sms(sms_client, "what is the wifi password", sender="+16175550105")
    sms_app.extensions["recorder"].flush()
    with sms_app.app_context():
        db = get_session()
        db.add(Acknowledgement(escalation_id=db.scalar(select(Escalation.id)), by="c@example.org",
                               note="called +16175550101"))
        db.commit()
        engine = sms_app.extensions["engine"]
        assert purge(engine, 90)["escalations"] == 0  # nothing is old yet

        done = purge(engine, 90, now=utcnow() + timedelta(days=91))
        assert done["messages"] == 4 and done["escalations"] == 1 and done["alerts"] == 2 and done["notes"] == 1
        assert done["unanswered"] == 1  # the wifi question: deleted, words and number
        db.expire_all()
        escalation = db.scalar(select(Escalation))
        assert (escalation.phone, escalation.text) == ("", "")
        assert (escalation.level, escalation.topic, escalation.locale) == ("call_now", "fever", "en")
        assert db.scalar(select(func.count()).select_from(InboundMessage)) == 4  # the counts stay
        assert db.scalar(select(func.count()).where(InboundMessage.phone != "")) == 0
        assert all("+1617" not in a.body for a in db.scalars(select(Alert)))
        assert db.scalar(select(Acknowledgement)).note == ""
        # The opt-out stays, whatever its age; a quiet number's language goes.
        assert [s.phone for s in db.scalars(select(Sender))] == ["+16175550103"]
        assert purge(engine, 90, now=utcnow() + timedelta(days=92)) == {k: 0 for k in done}


def test_the_opted_out_number_is_still_not_texted_after_a_purge(sms_app, sms_client):
    text_sms(sms_client, "STOP", sender="+16175550104")
    sms_app.extensions["recorder"].flush()
    purge(sms_app.extensions["engine"], 1, now=utcnow() + timedelta(days=400))
    from .test_sms import messages

    assert messages(text_sms(sms_client, "fever", sender="+16175550104")) == []


def test_purge_command(sms_app):
    result = sms_app.test_cli_runner().invoke(args=["admin", "purge", "--days", "30"])
    assert result.exit_code == 0 and result.output.startswith("older than 30 days:")


def test_an_unanswered_texts_number_goes_at_the_next_purge_its_words_stay(sms_app, sms_client):
    from assistant.models import UnansweredText

    text_sms(sms_client, "what is the wifi password", sender="+16175550106")
    sms_app.extensions["recorder"].flush()
    done = purge(sms_app.extensions["engine"], 90)  # nothing is old, yet the number goes
    assert done["unanswered_numbers"] == 1 and done["unanswered"] == 0
    with sms_app.app_context():
        row = get_session().scalar(select(UnansweredText))
        assert (row.phone, row.text) == ("", "what is the wifi password")
