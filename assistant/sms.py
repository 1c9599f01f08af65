"""Twilio SMS webhooks: ``POST /sms`` (incoming texts) and ``POST /sms/status`` (alert delivery)."""

from __future__ import annotations

import hmac
import logging
from functools import lru_cache, wraps

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from . import inbox
from .alerts import record_status
from .db import get_session

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)


def signed_url() -> str:
    """The URL Twilio signed: rebuilt from PUBLIC_BASE_URL when the app sits behind a proxy or tunnel."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


@lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def _signed_by_twilio(token: str, url: str, form, signature: str) -> bool:
    """Twilio's own check. The signature over the URL as this app rebuilds it is tried first, with one
    HMAC; ``validate`` computes two (the URL with and without its port) and accepts either, so it
    decides whatever does not match at once."""
    validator = _validator(token)
    if hmac.compare_digest(validator.compute_signature(url, form).encode(), signature.encode()):
        return True
    return validator.validate(url, form, signature)


def twilio_signed(view):
    """Reject (403) a request whose X-Twilio-Signature does not match. Without TWILIO_AUTH_TOKEN (allowed
    only outside production) requests are not checked, so the webhook can be tried with curl."""

    @wraps(view)
    def checked(*args, **kwargs):
        # Before the form is read: an unsigned 50 MB body must not cost a worker its memory and CPU.
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit and (request.content_length or 0) > limit:
            abort(413)
        token = current_app.config.get("TWILIO_AUTH_TOKEN")
        if not token and not current_app.extensions.get("unsigned_warned"):
            current_app.extensions["unsigned_warned"] = True
            log.warning("TWILIO_AUTH_TOKEN is not set: webhook signatures are not checked (development only)")
        if token and not _signed_by_twilio(token, signed_url(), request.form,
                                           request.headers.get("X-Twilio-Signature", "")):
            log.warning("bad Twilio signature", extra={"event": "sms.forbidden", "path": request.path,
                                                       "url": signed_url()})
            abort(403)
        return view(*args, **kwargs)

    return checked


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
