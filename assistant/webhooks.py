"""What every Twilio webhook (SMS, voice) shares: the URL Twilio signed, and the signature check."""

from __future__ import annotations

import hmac
import logging
from functools import lru_cache, wraps

from flask import abort, current_app, request
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)


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
            log.warning("bad Twilio signature", extra={"event": "twilio.forbidden", "path": request.path,
                                                       "url": signed_url()})
            abort(403)
        return view(*args, **kwargs)

    return checked
