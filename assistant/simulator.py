"""The phone simulator at ``/``: try the assistant without Twilio, as a caregiver's phone would show it.

A text goes the same way as one from Twilio (memory, escalations, alerts), without the signature. The page
works with and without JavaScript: the script posts JSON and draws the reply; a plain form post gets the
page back with the conversation so far. Off in production.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    render_template_string,
    request,
    url_for,
)
from sqlalchemy import select

from . import inbox
from .alerts import alert_numbers
from .catalog import language_name
from .config import PLACEHOLDER_CARE_TEAM
from .db import get_session
from .direction import html_lang, text_direction
from .inbox import SIMULATED_SID, Outcome
from .language import language_label
from .models import Alert, Escalation
from .segments import NUMBER

bp = Blueprint("simulator", __name__)

DEMO_PHONE = "+15550100123"  # 555-01xx numbers are reserved for fiction
_PHONE = re.compile(r"\+?[0-9 ()-]{3,40}")
PHONE_ERROR = "The caregiver's phone number must be digits, like +1 555 010 0123."


def valid_phone(phone: str) -> bool:
    """A number the simulator's text and call modes accept as the caregiver's."""
    return bool(_PHONE.fullmatch(phone))
HISTORY_ITEMS, HISTORY_BYTES = 40, 32_000  # what a page without JavaScript carries of the conversation
TRY = [("MENU", "en"), ("FEVER", "en"), ("fiebre", "es"), ("my son has a temp of 38,5", "en"),
       ("عنده حمى", "ar"), ("MAB", "en"), ("LANG", "en"), ("STOP", "en"), ("START", "en")]
_FORM_SID = re.compile(rf"{SIMULATED_SID}[0-9a-f]{{32}}")


def _new_sid() -> str:
    """A simulated message id: the simulator's prefix, never one of Twilio's (SM, MM)."""
    return f"{SIMULATED_SID}{uuid.uuid4().hex}"

LEVELS = {  # what each triage level means to a coordinator, and the word on the badge
    "emergency": ("Emergency", "told to call the emergency number now, then the care team"),
    "call_now": ("Call now", "told to call the care team now"),
    "info": ("Answer", "a summary of the clinic's content"),
    "none": ("Reply", "a command's answer or a request to rephrase"),
}
COMMANDS = {"menu": "MENU command", "help": "HELP command", "language": "LANG command", "more": "MORE command",
            "start": "START command", "stop": "STOP command"}
ENCODINGS = {
    "GSM-7": ("standard characters", "GSM-7: up to 160 characters fit in one text, 153 each when a reply "
                                     "takes several"),
    "UCS-2": ("special characters", "UCS-2 (Unicode): one character outside the standard set (accents such "
                                    "as á, Chinese, Arabic, emoji) makes a text hold 70 characters, 67 each "
                                    "when a reply takes several"),
}


def _on() -> None:
    if not current_app.config.get("SIMULATOR"):
        abort(404)


def numbers(app: Flask) -> list[dict[str, str]]:
    """Which number is which: the value in use and the setting that changes it."""
    settings, config = app.extensions["assistant"].settings, app.config
    service = config.get("TWILIO_MESSAGING_SERVICE_SID")
    hospital = config.get("TWILIO_FROM_NUMBER") or (f"Messaging Service {service}" if service else "")
    on_call = alert_numbers(config)
    return [
        {"label": "The hospital's SMS number (caregivers text it)", "value": hospital or "not set",
         "setting": "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
         "note": "" if hospital else "set it to the Twilio number whose webhook points at /sms"},
        {"label": "Care team, in every escalation and help text", "value": settings.care_team_phone,
         "setting": "CARE_TEAM_PHONE",
         "note": "a fictional placeholder: set the real number" if
                 settings.care_team_phone == PLACEHOLDER_CARE_TEAM else ""},
        {"label": "Emergency number, in emergency replies", "value": settings.emergency_number,
         "setting": "EMERGENCY_NUMBER", "note": ""},
        {"label": "On-call staff, alerted on every escalation", "value": ", ".join(on_call) or "none set",
         "setting": "ALERT_NUMBERS",
         "note": "" if on_call else "escalations are recorded, but nobody is alerted"},
    ]


def _alerts(sid: str) -> list[dict[str, str]] | None:
    """The on-call alerts queued for the escalation of message ``sid``; None if they cannot be read."""
    try:
        rows = get_session().execute(
            select(Alert.to_number, Alert.status).join(Escalation, Alert.escalation_id == Escalation.id)
            .where(Escalation.message_sid == sid).order_by(Alert.id)).all()
    except Exception:
        return None
    return [{"to": to, "status": status} for to, status in rows]


def _alert_note(app: Flask, outcome: Outcome, sid: str) -> str:
    if outcome.level not in ("emergency", "call_now"):
        return ""
    if not alert_numbers(app.config):
        return "Recorded as an escalation. Nobody was alerted: no on-call numbers are set (ALERT_NUMBERS)."
    alerts = _alerts(sid)
    if not alerts:
        return "Recorded as an escalation; the on-call alerts wait in the local spool until the database is back."
    waiting = [a["to"] for a in alerts if a["status"] == "pending"]
    done = [f"{a['to']} ({a['status']})" for a in alerts if a["status"] != "pending"]
    parts = []
    if waiting:
        parts.append("queued for " + ", ".join(waiting) + " (the alert worker sends them)")
    if done:
        parts.append(", ".join(done))
    return "On-call staff alert " + "; ".join(parts) + "."


def describe(app: Flask, outcome: Outcome, sid: str) -> dict[str, Any]:
    """The reply as the page shows it: the text with its language and direction, and a plain-words
    line on its size, kind and language, with the technical terms for a hover or the legend."""
    catalog = app.extensions["assistant"].store.current
    item: dict[str, Any] = {"who": "assistant", "reply": outcome.text, "level": outcome.level,
                            "topic": outcome.topic, "locale": outcome.locale, "lang": html_lang(outcome.locale),
                            "dir": text_direction(outcome.locale), "segments": outcome.segments,
                            "encoding": outcome.encoding}
    if outcome.text is None:
        item["note"] = ("Nothing is sent to this phone: it has opted out (STOP). START brings the texts back."
                        if outcome.topic != "stop" else
                        "Nothing is sent: the carrier confirms its own STOP word. START brings the texts back.")
    badge, meaning = LEVELS.get(outcome.level, LEVELS["none"])
    if outcome.topic in COMMANDS:
        kind = COMMANDS[outcome.topic]
    elif outcome.topic:
        try:
            kind = catalog.text("en", f"topic:{outcome.topic}:title")
        except KeyError:
            kind = outcome.topic.replace("_", " ")
    else:
        kind = "no topic" if outcome.level == "none" else ""
    size, technical = ENCODINGS.get(outcome.encoding, ENCODINGS["UCS-2"])
    texts = f"{outcome.segments} text{'s' if outcome.segments != 1 else ''}, {size}" if outcome.text else ""
    item.update(badge=badge, badge_title=f"{outcome.level}: {meaning}", kind=kind, size=texts,
                size_title=f"{outcome.segments} SMS segment(s), {technical}",
                language=language_label(outcome.locale), language_own=language_name(outcome.locale),
                alerts=_alert_note(app, outcome, sid))
    return item


@bp.app_template_filter("number_parts")
def number_parts(text: str | None) -> list[tuple[str, bool]]:
    """``text`` cut into (part, is_a_number), so the page never wraps a phone number at its hyphen."""
    parts, at = [], 0
    for match in NUMBER.finditer(text or ""):
        if match.start() > at:
            parts.append((text[at:match.start()], False))
        parts.append((match.group(), True))
        at = match.end()
    if at < len(text or ""):
        parts.append((text[at:], False))
    return parts


def _history(raw: str | None) -> list[dict[str, Any]]:
    """The conversation a page without JavaScript posted back; anything malformed is dropped."""
    if not raw or len(raw) > HISTORY_BYTES:
        return []
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):  # "[[[[…": nesting deeper than the parser goes
        return []
    if not isinstance(items, list):
        return []
    keep = []
    for item in items[-HISTORY_ITEMS:]:
        if isinstance(item, dict) and all(isinstance(v, str | int | type(None)) for v in item.values()):
            keep.append({k: v for k, v in item.items() if isinstance(k, str)})
    return keep


def _page(phone: str, history: list[dict[str, Any]], error: str = "", status: int = 200, text: str = ""):
    """The page; ``text``: what was typed, kept when the form comes back with an error."""
    app = current_app._get_current_object()
    tries = [{"word": w, "lang": html_lang(loc), "dir": text_direction(loc)} for w, loc in TRY]
    # A new message id per page: a browser that posts the same form again (reload, back) repeats the
    # id, which the inbox takes for a retry of that text: the same answer, no second escalation.
    form_sid = _new_sid()
    return render_template("simulator.html", phone=phone, history=history, error=error, numbers=numbers(app),
                           tries=tries, levels=LEVELS, encodings=ENCODINGS, text=text, form_sid=form_sid,
                           voice_url=url_for("voice.simulator_voice") if "voice" in app.blueprints else "",
                           history_json=json.dumps(history, ensure_ascii=False)), status


@bp.get("/")
def page():
    _on()
    phone = request.args.get("from", DEMO_PHONE)
    return _page(phone if valid_phone(phone) else DEMO_PHONE, [])


@bp.post("/simulator/send")
def send():
    """One text. JSON in and out for the page's script; a form post (no JavaScript) gets the page."""
    _on()
    as_json = request.is_json
    data = request.get_json(silent=True) if as_json else request.form
    data = data if isinstance(data, dict) or hasattr(data, "get") else {}
    phone = str(data.get("from") or DEMO_PHONE)[:40].strip()
    text = str(data.get("try") or data.get("text") or "")  # "try": one of the first screen's examples
    history = [] if as_json else _history(request.form.get("history"))
    if not valid_phone(phone):
        error = PHONE_ERROR
        if as_json:
            return jsonify({"error": error}), 400
        return _page(phone, history, error, 400, text=text)
    app = current_app._get_current_object()
    posted = str(data.get("sid") or "")
    sid = posted if _FORM_SID.fullmatch(posted) else _new_sid()
    outcome = inbox.handle(app, sid, phone, text, int(bool(data.get("picture"))))
    item = describe(app, outcome, sid)
    if as_json:
        item["html"] = render_template_string('{% from "_bubble.html" import bubble %}{{ bubble(item) }}', item=item)
        return jsonify(item)
    mine = {"who": "caregiver", "reply": text}
    return _page(phone, [*history, mine, item])


@bp.post("/simulator/reset")
def reset():
    """Start over: forget the demo number's language, menus and opt-out."""
    _on()
    data = request.get_json(silent=True) if request.is_json else request.form
    phone = str((data or {}).get("from") or DEMO_PHONE)[:40].strip()
    if not valid_phone(phone):
        return jsonify({"error": PHONE_ERROR}), 400
    try:
        forgotten = current_app.extensions["recorder"].forget(inbox.clean(phone, inbox.PHONE_MAX))
    except Exception:
        forgotten, error = False, "The database is not answering; nothing was reset."
    else:
        error = "" if forgotten else ("This number has texted through Twilio: what the assistant keeps of a "
                                      "real caregiver (an opt-out above all) is never erased here. Use "
                                      "another number.")
    if request.is_json:
        return (jsonify({"reset": True}), 200) if forgotten else (jsonify({"error": error}), 409)
    if not forgotten:
        return _page(phone, [], error, 409)
    return redirect(url_for("simulator.page", **({"from": phone} if phone != DEMO_PHONE else {})), 303)
