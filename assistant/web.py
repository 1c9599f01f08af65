"""Health check for the platform, and the phone simulator for trying the assistant without Twilio."""

from __future__ import annotations

import re
import threading
import uuid

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from . import inbox

bp = Blueprint("web", __name__)


HEALTH_TIMEOUT = 1.5  # seconds: a stalled database is reported (503) well within a platform's check


@bp.get("/healthz")
def healthz():
    # In a thread of its own: a connection to a server that never answers cannot be cut before
    # libpq's connect_timeout, and the check must answer before that.
    recorder = current_app.extensions["recorder"]
    result: list[str] = []

    def ping() -> None:
        try:
            recorder.ping(HEALTH_TIMEOUT)
            result.append("ok")
        except Exception:
            result.append("unavailable")

    checker = threading.Thread(target=ping, name="healthz", daemon=True)
    checker.start()
    checker.join(HEALTH_TIMEOUT)
    database = result[0] if result else "unavailable"
    catalog = current_app.extensions["assistant"].store.current
    body = {"status": "ok" if database == "ok" else "degraded", "database": database,
            "languages": len(catalog.languages), "catalog_errors": len(catalog.errors)}
    return jsonify(body), 200 if database == "ok" else 503


def _simulator_on() -> None:
    if not current_app.config.get("SIMULATOR"):
        abort(404)


@bp.get("/")
def simulator():
    _simulator_on()
    settings = current_app.extensions["assistant"].settings
    return render_template("simulator.html", care_team=settings.care_team_phone)


@bp.post("/simulator/send")
def simulator_send():
    """The same path as a Twilio text (memory, escalations, alerts), without the signature."""
    _simulator_on()
    data = request.get_json(silent=True) or {}
    phone = str(data.get("from") or "+15550100000")[:40]
    if not re.fullmatch(r"\+?[0-9 ()-]{3,40}", phone):
        return jsonify({"error": "from must be a phone number"}), 400
    outcome = inbox.handle(current_app._get_current_object(), f"SIM{uuid.uuid4().hex}", phone,
                           str(data.get("text") or ""), int(bool(data.get("picture"))))
    return jsonify({"reply": outcome.text, "level": outcome.level, "topic": outcome.topic,
                    "locale": outcome.locale, "segments": outcome.segments, "encoding": outcome.encoding})
