"""Care-team alerts: written to an outbox with the escalation, sent by a worker with retries.

The webhook only inserts rows (in the same transaction as the escalation, so an alert exists exactly
when its escalation does). ``assistant worker`` claims due rows with a conditional UPDATE, so several
workers never take the same row, sends each through the Twilio REST client, and on failure retries
with exponential backoff. Twilio's status callback (``POST /sms/status``) records delivery.

Exactly once, as far as it can be known: the HTTP client gives up (TWILIO_TIMEOUT) well before a claim
expires (LOCK_SECONDS), so a slow API cannot let a second worker send the same alert. An alert whose
send may have reached Twilio without its outcome being recorded (a timeout, a network error, a worker
or database gone between the send and the update) stays ``sending``; before it is sent again, the
worker looks for it among the messages Twilio has for that number (same body) and, if it is there,
records that message instead of sending another. A failed or undelivered alert is sent to the next
on-call number that has not got this escalation.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from .catalog import language_name
from .logs import mask_phone
from .models import Alert, Escalation, Sender, utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
BACKOFF_BASE = 5.0  # seconds; doubles each attempt, capped below
BACKOFF_CAP = 300.0
LOCK_SECONDS = 60
TWILIO_TIMEOUT = 10.0  # seconds for one API call; far less than LOCK_SECONDS, so a claim outlives its send


# What Twilio posts as ``From`` for a caller who hides their number: words, or numbers the carriers use
# for it (shared by every hidden caller, so never a person's number).
HIDDEN_CALLERS = frozenset({"", "anonymous", "restricted", "unknown", "private", "unavailable", "blocked",
                            "+266696687", "+86282452253", "+7378742833", "+2562533"})


def callback_number(phone: str | None) -> str | None:
    """The caller's number as given, or None when it is hidden: nobody can call or text it back, and it
    is not one person's (no language remembered for it)."""
    value = (phone or "").strip()
    return None if value.lower() in HIDDEN_CALLERS else value


def alert_numbers(config: dict[str, Any], key: str = "ALERT_NUMBERS") -> list[str]:
    return [n.strip() for n in str(config.get(key) or "").split(",") if n.strip()]


def failover_numbers(config: dict[str, Any]) -> list[str]:
    """Where a failed alert goes next: the other on-call numbers, then ALERT_BACKUP_NUMBERS."""
    return alert_numbers(config) + [n for n in alert_numbers(config, "ALERT_BACKUP_NUMBERS")
                                    if n not in alert_numbers(config)]


def alert_body(escalation: Escalation | SimpleNamespace) -> str:
    """What on-call staff read: level, topic, language, time, and how to reach the caregiver. Never the
    caregiver's words: an SMS to a staff phone is not a place for them. An alert sent while the database
    is away has no number yet; one for a caregiver who got no reply (opted out of texts) says so."""
    what = escalation.topic or (escalation.rules.split(",")[0] if escalation.rules else "symptom")
    ref = f"#{escalation.id}" if escalation.id is not None else f"ref {escalation.message_sid[-8:]}"
    body = (f"Caregiver Assistant ALERT {ref}: {escalation.level.upper().replace('_', ' ')} "
            f"({what.replace('_', ' ')}), language {language_name(escalation.locale)}, "
            f"{escalation.created_at:%Y-%m-%d %H:%M} UTC. " + (
                f"Call the caregiver at {escalation.phone}." if callback_number(escalation.phone)
                else "NO callback number: the caller hid it."))
    if getattr(escalation, "unanswered", False):
        body += " They opted out of texts and got NO reply: call them."
    return body


def alert_rows(escalation: Escalation | SimpleNamespace, numbers: list[str],
               direct: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One outbox row per on-call number, written in the escalation's own transaction. ``direct``: what
    was sent straight through Twilio while the database was away (sent, or ``sending``: maybe sent)."""
    body, now = alert_body(escalation), utcnow()
    rows = []
    for n in numbers:
        row = {"escalation_id": escalation.id, "to_number": n, "body": body, "status": "pending", "attempts": 0,
               "next_attempt_at": now, "created_at": now, "twilio_sid": None, "sent_at": None}
        if direct:
            row["body"] = direct.get("body") or body
            if n in direct.get("sids", {}):
                row.update(status="sent", twilio_sid=direct["sids"][n], sent_at=now, attempts=1)
            elif direct.get("state") == "sending":  # the sender stopped mid-way: looked up before a resend
                row.update(status="sending", attempts=1)
        rows.append(row)
    return rows


def twilio_client(config: dict[str, Any]) -> Client:
    client = Client(config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN"),
                    http_client=TwilioHttpClient(timeout=TWILIO_TIMEOUT))
    base = config.get("TWILIO_API_BASE_URL")
    if base:  # a Twilio-compatible endpoint (the tests' stand-in for api.twilio.com)
        client.api.base_url = base.rstrip("/")
    return client


def claim(factory: sessionmaker, worker: str, limit: int = 10) -> list[Alert]:
    """Take up to ``limit`` due alerts for ``worker``. The UPDATE re-checks its conditions on each row,
    so two workers racing for a row cannot both get it (on SQLite and PostgreSQL alike). An alert that
    was ``sending`` already comes back with ``uncertain`` set: it may have reached Twilio."""
    now = utcnow()
    due = and_(Alert.status.in_(("pending", "sending")), Alert.next_attempt_at <= now,
               or_(Alert.locked_until.is_(None), Alert.locked_until < now))
    with factory() as session, session.begin():
        found = session.execute(select(Alert.id, Alert.status).where(due).order_by(Alert.id).limit(limit)).all()
        if not found:
            return []
        ids = [row.id for row in found]
        session.execute(update(Alert).where(Alert.id.in_(ids), due).values(
            status="sending", claimed_by=worker, locked_until=now + timedelta(seconds=LOCK_SECONDS)))
    uncertain = {row.id for row in found if row.status == "sending"}
    with factory() as session:
        claimed = list(session.scalars(select(Alert).where(Alert.id.in_(ids), Alert.claimed_by == worker,
                                                           Alert.status == "sending")))
    for alert in claimed:
        alert.uncertain = alert.id in uncertain
    return claimed


def _message_kwargs(config: dict[str, Any], to: str, body: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"to": to, "body": body}
    if config.get("TWILIO_MESSAGING_SERVICE_SID"):
        kwargs["messaging_service_sid"] = config["TWILIO_MESSAGING_SERVICE_SID"]
    else:
        kwargs["from_"] = config.get("TWILIO_FROM_NUMBER")
    if config.get("PUBLIC_BASE_URL"):
        kwargs["status_callback"] = config["PUBLIC_BASE_URL"].rstrip("/") + "/sms/status"
    return kwargs


def send_direct(config: dict[str, Any], to: str, body: str, client: Client | None = None) -> str:
    """Send one alert now, outside the outbox (the database is away); returns Twilio's message sid."""
    client = client or twilio_client(config)
    return client.messages.create(**_message_kwargs(config, to, body)).sid


def find_sent(client: Client, alert: Alert) -> str | None:
    """The sid of a message Twilio already has for this alert (same number, same body), if any. If
    Twilio cannot be asked, None: the alert is sent (again), a duplicate rather than a missed alert."""
    try:
        for message in client.messages.list(to=alert.to_number, limit=50):
            if message.body == alert.body:
                return message.sid
    except (TwilioException, OSError) as exc:
        log.warning("could not look the alert up at Twilio (%s); sending it", type(exc).__name__,
                    extra={"event": "alert.lookup_failed", "alert_id": alert.id})
    return None


def send(factory: sessionmaker, client: Client, config: dict[str, Any], alert: Alert) -> str:
    """Send one claimed alert; record the outcome. Returns the new status."""
    values: dict[str, Any]
    try:
        found = find_sent(client, alert) if getattr(alert, "uncertain", False) else None
        if alert.escalation_id is None and not found and opted_out(factory, alert.to_number):
            # A text a caller asked for, and the number has opted out of texts since: nothing is sent.
            values = {"status": "failed", "error": "the number opted out of texts", "attempts": alert.attempts}
        elif found:
            log.warning("alert was sent before; not sent again", extra={"event": "alert.reconciled",
                                                                        "alert_id": alert.id})
            values = {"status": "sent", "twilio_sid": found, "sent_at": utcnow(), "error": None}
        else:
            message = client.messages.create(**_message_kwargs(config, alert.to_number, alert.body))
            values = {"status": "sent", "twilio_sid": message.sid, "sent_at": utcnow(), "error": None}
    except TwilioRestException as exc:  # Twilio answered: the message was not created
        permanent = 400 <= (exc.status or 500) < 500 and exc.status != 429
        values = _failure(alert, f"{exc.status} {exc.code}: {exc.msg}", permanent)
    except (TwilioException, OSError) as exc:  # network trouble, timeouts: it may have been created
        values = _failure(alert, f"{type(exc).__name__}: {exc}", False, uncertain=True)
    with factory() as session, session.begin():
        session.execute(update(Alert).where(Alert.id == alert.id, Alert.claimed_by == alert.claimed_by)
                        .values(claimed_by=None, locked_until=None, **values))
        if values["status"] == "failed":
            fail_over(session, alert.escalation_id, alert.to_number, alert.body, failover_numbers(config))
    log.info("alert %s", values["status"], extra={"event": "alert.send", "alert_id": alert.id,
                                                   "to": mask_phone(alert.to_number), "status": values["status"],
                                                   "attempt": values.get("attempts", alert.attempts + 1)})
    return values["status"]


def opted_out(factory: sessionmaker, phone: str) -> bool:
    with factory() as session:
        return bool(session.scalar(select(Sender.opted_out).where(Sender.phone == phone)))


def _failure(alert: Alert, error: str, permanent: bool, uncertain: bool = False) -> dict[str, Any]:
    attempts = alert.attempts + 1
    if permanent or attempts >= MAX_ATTEMPTS:
        return {"status": "failed", "attempts": attempts, "error": error}
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempts - 1))
    return {"status": "sending" if uncertain else "pending", "attempts": attempts, "error": error,
            "next_attempt_at": utcnow() + timedelta(seconds=delay)}


def fail_over(session: Session, escalation_id: int | None, failed_number: str, body: str, numbers: list[str]) -> None:
    """A failed alert goes to the next number of ``numbers`` (after the failed one, then from the start)
    that has no alert for this escalation yet; with none left, an error says so. The failed row stays
    as it is, so the outbox shows it failed. A text to a caller (no escalation) is never sent to staff."""
    if escalation_id is None:
        log.error("text to a caller failed", extra={"event": "caller_text.failed", "to": mask_phone(failed_number)})
        return
    have = set(session.scalars(select(Alert.to_number).where(Alert.escalation_id == escalation_id)))
    start = numbers.index(failed_number) + 1 if failed_number in numbers else 0
    for number in numbers[start:] + numbers[:start]:
        if number not in have:
            now = utcnow()
            session.add(Alert(escalation_id=escalation_id, to_number=number, body=body, status="pending",
                              attempts=0, next_attempt_at=now, created_at=now))
            log.error("alert failed; sent to the next on-call number", extra={
                "event": "alert.failover", "escalation_id": escalation_id, "to": mask_phone(number)})
            return
    log.error("ALERT FAILED and every on-call number has this escalation already",
              extra={"event": "alert.failed", "escalation_id": escalation_id, "to": mask_phone(failed_number)})


def run_once(app: Flask, worker: str | None = None, client: Client | None = None) -> int:
    """Send every alert that is due now; returns how many were tried."""
    worker = worker or f"worker-{uuid.uuid4().hex[:12]}"
    factory = app.extensions["sessionmaker"]
    client = client or twilio_client(app.config)
    tried = 0
    while batch := claim(factory, worker):
        for alert in batch:
            send(factory, client, app.config, alert)
            tried += 1
    return tried


def record_status(session: Session, sid: str, status: str, error_code: str | None,
                  config: dict[str, Any] | None = None) -> bool:
    """Apply Twilio's status callback to the alert it is about; a failed or undelivered one is sent to
    the next on-call number. Returns False if unknown."""
    alert = session.scalar(select(Alert).where(Alert.twilio_sid == sid))
    if alert is None:
        return False
    if status == "delivered":
        alert.status, alert.delivered_at = "delivered", utcnow()
    elif status in ("failed", "undelivered") and alert.status != status:
        alert.status, alert.error = status, f"Twilio error {error_code}" if error_code else status
        fail_over(session, alert.escalation_id, alert.to_number, alert.body, failover_numbers(config or {}))
    session.commit()
    return True


@click.command("worker")
@click.option("--once", is_flag=True, help="Send what is due, then stop.")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between looks at the outbox.")
@with_appcontext
def worker_command(once: bool, poll: float) -> None:
    """Send care-team alerts from the outbox (the Procfile's worker)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not alert_numbers(app.config):
        log.error("ALERT_NUMBERS is not set: escalations are recorded but NOBODY IS ALERTED")
    worker = f"worker-{uuid.uuid4().hex[:12]}"
    client = twilio_client(app.config)
    recorder = app.extensions["recorder"]
    from .retention import Schedule

    retention = Schedule()
    app.extensions["catalog_watcher"].ensure_started()  # the live catalog revision, as the web workers
    while True:
        try:
            run_once(app, worker, client)
        except Exception:  # the database may be away for a moment; keep the worker alive
            log.exception("worker pass failed")
        retention.maybe(app)  # caregivers' words and numbers older than MESSAGE_RETENTION_DAYS
        try:
            recorder.drain()  # a spool on this machine that no web process writes back (they all ended)
        except Exception:
            log.exception("spool drain failed")
        if once:
            return
        time.sleep(poll)


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
