"""Care-team alerts: written to an outbox with the escalation, sent by a worker with retries.

The webhook only inserts rows (in the same transaction as the escalation, so an alert exists exactly
when its escalation does). ``assistant worker`` claims due rows with a conditional UPDATE, so several
workers never take the same row, sends each through the Twilio REST client, and on failure retries
with exponential backoff. Twilio's status callback (``POST /sms/status``) records delivery.
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
from twilio.rest import Client

from .catalog import language_name
from .logs import mask_phone
from .models import Alert, Escalation, utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
BACKOFF_BASE = 5.0  # seconds; doubles each attempt, capped below
BACKOFF_CAP = 300.0
LOCK_SECONDS = 60


def alert_numbers(config: dict[str, Any]) -> list[str]:
    return [n.strip() for n in str(config.get("ALERT_NUMBERS") or "").split(",") if n.strip()]


def alert_body(escalation: Escalation | SimpleNamespace) -> str:
    """What on-call staff read: level, topic, language, time, and how to reach the caregiver. Never the
    caregiver's words: an SMS to a staff phone is not a place for them."""
    what = escalation.topic or (escalation.rules.split(",")[0] if escalation.rules else "symptom")
    return (f"Caregiver Assistant ALERT #{escalation.id}: {escalation.level.upper().replace('_', ' ')} "
            f"({what.replace('_', ' ')}), language {language_name(escalation.locale)}, "
            f"{escalation.created_at:%Y-%m-%d %H:%M} UTC. Call the caregiver at {escalation.phone}.")


def alert_rows(escalation: Escalation | SimpleNamespace, numbers: list[str]) -> list[dict[str, Any]]:
    """One outbox row per on-call number, written in the escalation's own transaction."""
    body, now = alert_body(escalation), utcnow()
    return [{"escalation_id": escalation.id, "to_number": n, "body": body, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now} for n in numbers]


def twilio_client(config: dict[str, Any]) -> Client:
    client = Client(config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN"))
    base = config.get("TWILIO_API_BASE_URL")
    if base:  # a Twilio-compatible endpoint (the tests' stand-in for api.twilio.com)
        client.api.base_url = base.rstrip("/")
    return client


def claim(factory: sessionmaker, worker: str, limit: int = 10) -> list[Alert]:
    """Take up to ``limit`` due alerts for ``worker``. The UPDATE re-checks its conditions on each row,
    so two workers racing for a row cannot both get it (on SQLite and PostgreSQL alike)."""
    now = utcnow()
    due = and_(Alert.status.in_(("pending", "sending")), Alert.next_attempt_at <= now,
               or_(Alert.locked_until.is_(None), Alert.locked_until < now))
    with factory() as session, session.begin():
        ids = session.scalars(select(Alert.id).where(due).order_by(Alert.id).limit(limit)).all()
        if not ids:
            return []
        session.execute(update(Alert).where(Alert.id.in_(ids), due).values(
            status="sending", claimed_by=worker, locked_until=now + timedelta(seconds=LOCK_SECONDS)))
    with factory() as session:
        return list(session.scalars(select(Alert).where(Alert.id.in_(ids), Alert.claimed_by == worker,
                                                        Alert.status == "sending")))


def send(factory: sessionmaker, client: Client, config: dict[str, Any], alert: Alert) -> str:
    """Send one claimed alert; record the outcome. Returns the new status."""
    kwargs: dict[str, Any] = {"to": alert.to_number, "body": alert.body}
    if config.get("TWILIO_MESSAGING_SERVICE_SID"):
        kwargs["messaging_service_sid"] = config["TWILIO_MESSAGING_SERVICE_SID"]
    else:
        kwargs["from_"] = config.get("TWILIO_FROM_NUMBER")
    if config.get("PUBLIC_BASE_URL"):
        kwargs["status_callback"] = config["PUBLIC_BASE_URL"].rstrip("/") + "/sms/status"
    values: dict[str, Any]
    try:
        message = client.messages.create(**kwargs)
        values = {"status": "sent", "twilio_sid": message.sid, "sent_at": utcnow(), "error": None}
    except TwilioRestException as exc:
        permanent = 400 <= (exc.status or 500) < 500 and exc.status != 429
        values = _failure(alert, f"{exc.status} {exc.code}: {exc.msg}", permanent)
    except (TwilioException, OSError) as exc:  # network trouble, timeouts
        values = _failure(alert, f"{type(exc).__name__}: {exc}", False)
    with factory() as session, session.begin():
        session.execute(update(Alert).where(Alert.id == alert.id, Alert.claimed_by == alert.claimed_by)
                        .values(claimed_by=None, locked_until=None, **values))
    log.info("alert %s", values["status"], extra={"event": "alert.send", "alert_id": alert.id,
                                                   "to": mask_phone(alert.to_number), "status": values["status"],
                                                   "attempt": values.get("attempts", alert.attempts + 1)})
    return values["status"]


def _failure(alert: Alert, error: str, permanent: bool) -> dict[str, Any]:
    attempts = alert.attempts + 1
    if permanent or attempts >= MAX_ATTEMPTS:
        return {"status": "failed", "attempts": attempts, "error": error}
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempts - 1))
    return {"status": "pending", "attempts": attempts, "error": error,
            "next_attempt_at": utcnow() + timedelta(seconds=delay)}


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


def record_status(session: Session, sid: str, status: str, error_code: str | None) -> bool:
    """Apply Twilio's status callback to the alert it is about. Returns False if unknown."""
    alert = session.scalar(select(Alert).where(Alert.twilio_sid == sid))
    if alert is None:
        return False
    if status == "delivered":
        alert.status, alert.delivered_at = "delivered", utcnow()
    elif status in ("failed", "undelivered"):
        alert.status, alert.error = status, f"Twilio error {error_code}" if error_code else status
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
        log.warning("ALERT_NUMBERS is not set: escalations are recorded but no alert is queued")
    worker = f"worker-{uuid.uuid4().hex[:12]}"
    client = twilio_client(app.config)
    while True:
        try:
            run_once(app, worker, client)
        except Exception:  # the database may be away for a moment; keep the worker alive
            log.exception("worker pass failed")
        if once:
            return
        time.sleep(poll)


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
