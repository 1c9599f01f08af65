"""Twilio SMS webhooks: ``POST /sms`` (incoming texts) and ``POST /sms/status`` (alert delivery)."""

from __future__ import annotations

import logging
from functools import lru_cache

from flask import Blueprint, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from . import inbox
from .alerts import record_status
from .db import get_session
from .webhooks import signed_url, twilio_signed

__all__ = ["bp", "signed_url", "twilio_signed", "twiml"]

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)


@lru_cache(maxsize=2048)
def _twiml(text: str | None) -> str:
    # Replies repeat (they are the catalog's texts), and serialising the XML costs more than composing
    # the reply, so each distinct reply is built with MessagingResponse once.
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


def twiml(text: str | None) -> Response:
    return Response(_twiml(text), mimetype="text/xml")


@bp.post("/sms")
@twilio_signed
def incoming() -> Response:
    form = request.form
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
    try:
        # Twilio sends at most 10; a number no database column holds would cost the text its record.
        media = min(max(0, int(form.get("NumMedia") or 0)), 100)
    except ValueError:
        media = 0
    outcome = inbox.handle(current_app._get_current_object(), sid or _local_sid(), form.get("From", ""),
                           form.get("Body", ""), media)
    return twiml(outcome.text)


def _local_sid() -> str:
    import uuid

    return f"local-{uuid.uuid4().hex}"


@bp.post("/sms/status")
@twilio_signed
def status() -> tuple[str, int]:
    form = request.form
    sid, state, code = form.get("MessageSid", ""), form.get("MessageStatus", ""), form.get("ErrorCode")
    try:
        known = record_status(get_session(), sid, state, code, current_app.config)
    except Exception as exc:
        # Twilio does not call again: the update waits in the spool for the database instead.
        known = None
        try:
            current_app.extensions["recorder"].keep_status(sid, state, code)
            log.warning("status callback spooled (%s)", type(exc).__name__, extra={"event": "alert.status.spooled"})
        except Exception:
            log.exception("STATUS CALLBACK LOST", extra={"event": "alert.status.lost", "sid": sid})
    log.info("status callback", extra={"event": "alert.status", "sid": sid, "status": state, "known": known})
    return "", 204
