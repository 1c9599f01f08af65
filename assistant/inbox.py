"""One inbound message, any channel: remembered once, answered, escalated. Never fails to answer.

Steps: a retry of a known message id gets the stored reply; otherwise the sender's state is read, the
conversation core answers, and the message, the new state, the escalation and its alerts are written
in one transaction. If the database fails at any step the caregiver still gets the core's answer,
which for a symptom is the escalation with the care-team number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .alerts import alert_numbers, queue_alerts
from .conversation import LAST_RESORT, Assistant, State
from .logs import mask_phone
from .models import Escalation, InboundMessage, Sender
from .segments import measure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    text: str | None  # None: send nothing
    level: str
    topic: str | None
    locale: str
    duplicate: bool = False  # a retry of a message already answered

    @property
    def segments(self) -> int:
        return measure(self.text).segments if self.text else 0

    @property
    def encoding(self) -> str:
        return measure(self.text or "").encoding


def handle(app: Flask, message_sid: str, phone: str, text: str, media: int = 0) -> Outcome:
    """Answer one inbound message. Never raises."""
    try:
        return _handle(app, message_sid, phone, text, media)
    except Exception:
        log.exception("inbound handling failed", extra={"event": "inbound.error", "phone": mask_phone(phone)})
        settings = app.extensions["assistant"].settings
        values = {"care_team": settings.care_team_phone, "emergency": settings.emergency_number}
        return Outcome(LAST_RESORT["none"].format(**values), "none", None, "en")


def _handle(app: Flask, message_sid: str, phone: str, text: str, media: int) -> Outcome:
    assistant: Assistant = app.extensions["assistant"]
    factory = app.extensions["sessionmaker"]
    state, db_ok = State(), True
    try:
        with factory() as session:
            seen = session.scalar(select(InboundMessage).where(InboundMessage.message_sid == message_sid))
            if seen is not None:
                return _replay(seen, phone)
            sender = session.get(Sender, phone)
            if sender is not None:
                state = sender.state()
    except SQLAlchemyError:
        db_ok = False
        log.exception("database unavailable; answering without memory",
                      extra={"event": "db.error", "phone": mask_phone(phone)})

    reply = assistant.reply(text, state, media=media)
    outcome = Outcome(reply.text, reply.level, reply.topic, reply.locale)
    log.info("inbound", extra={"event": "inbound", "phone": mask_phone(phone), "sid": message_sid,
                               "triage": reply.level, "topic": reply.topic, "locale": reply.locale,
                               "segments": outcome.segments, "failsafe": reply.failed})
    if not db_ok:
        if reply.finding.escalates:
            log.error("ESCALATION NOT RECORDED: database unavailable",
                      extra={"event": "escalation.unrecorded", "phone": mask_phone(phone), "sid": message_sid,
                             "triage": reply.level})
        return outcome
    try:
        with factory() as session, session.begin():
            sender = session.get(Sender, phone) or Sender(phone=phone)
            sender.remember(reply.state)
            session.add(sender)
            session.add(InboundMessage(message_sid=message_sid, phone=phone, num_media=media, level=reply.level,
                                       topic=reply.topic, locale=reply.locale, reply=reply.text))
            if reply.finding.escalates:
                escalation = Escalation(level=reply.level, locale=reply.locale, topic=reply.topic,
                                        rules=",".join(reply.finding.rules)[:255], phone=phone, text=text,
                                        message_sid=message_sid)
                session.add(escalation)
                session.flush()
                queue_alerts(session, escalation, alert_numbers(app.config))
                log.warning("escalation", extra={"event": "escalation", "escalation_id": escalation.id,
                                                 "triage": reply.level, "topic": reply.topic,
                                                 "phone": mask_phone(phone)})
    except IntegrityError:
        # The same MessageSid arrived twice at once: the other request stored it; answer as it did.
        with factory() as session:
            seen = session.scalar(select(InboundMessage).where(InboundMessage.message_sid == message_sid))
        if seen is not None:
            return _replay(seen, phone)
        raise
    except SQLAlchemyError:
        log.exception("could not record the message", extra={"event": "db.error", "phone": mask_phone(phone),
                                                               "escalates": reply.finding.escalates})
    return outcome


def _replay(seen: InboundMessage, phone: str) -> Outcome:
    log.info("retry answered from memory", extra={"event": "inbound.retry", "sid": seen.message_sid,
                                                  "phone": mask_phone(phone)})
    return Outcome(seen.reply, seen.level, seen.topic, seen.locale, duplicate=True)
