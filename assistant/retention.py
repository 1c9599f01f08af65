"""Keeping caregivers' words and numbers no longer than MESSAGE_RETENTION_DAYS (default 90).

After that the worker deletes them: the numbers and words of messages, escalations and unanswered texts,
the caregiver's number in an alert's text, a coordinator's note on an escalation. What stays: each
record's level, language, topic and time (so the counts stay right), and a number's opt-out, which must
be honoured for as long as the number exists. A number's language and menus go once it has been quiet
that long.

An unanswered text's number is of no use to anyone (the Unanswered page shows only the words, grouped), so
every run clears it, whatever the text's age: it is kept an hour at most, not the retention period.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, delete, or_, update
from sqlalchemy.engine import Engine

from .models import Acknowledgement, Alert, Escalation, InboundMessage, Sender, UnansweredText, utcnow

log = logging.getLogger(__name__)
DEFAULT_DAYS = 90
EVERY = 3600.0  # seconds between the worker's purges


def retention_days(config) -> int:
    try:
        days = int(config.get("MESSAGE_RETENTION_DAYS") or DEFAULT_DAYS)
    except (TypeError, ValueError):
        days = DEFAULT_DAYS
    return max(1, days)


def purge(engine: Engine, days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete what is older than ``days``; returns how many rows of each kind were cleared."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    done: dict[str, int] = {}
    with engine.begin() as conn:
        done["messages"] = conn.execute(
            update(InboundMessage).where(InboundMessage.received_at < cutoff,
                                         or_(InboundMessage.phone != "", InboundMessage.reply.is_not(None)))
            .values(phone="", reply=None)).rowcount
        done["escalations"] = conn.execute(
            update(Escalation).where(Escalation.created_at < cutoff,
                                     or_(Escalation.phone != "", Escalation.text != ""))
            .values(phone="", text="")).rowcount
        done["alerts"] = conn.execute(
            update(Alert).where(Alert.created_at < cutoff, Alert.body != "").values(body="")).rowcount
        done["notes"] = conn.execute(
            update(Acknowledgement).where(Acknowledgement.at < cutoff, Acknowledgement.note != "")
            .values(note="")).rowcount
        # Opt-outs stay: a number that said STOP is never texted again, however long ago that was.
        done["senders"] = conn.execute(
            delete(Sender).where(and_(Sender.updated_at < cutoff, Sender.opted_out.is_(False)))).rowcount
        done["unanswered"] = conn.execute(
            delete(UnansweredText).where(UnansweredText.received_at < cutoff)).rowcount
        done["unanswered_numbers"] = conn.execute(
            update(UnansweredText).where(UnansweredText.phone != "").values(phone="")).rowcount
    if any(done.values()):
        log.info("retention: older than %d days deleted", days, extra={"event": "retention.purge", **done})
    return done


class Schedule:
    """Runs :func:`purge` from the worker's loop at most every EVERY seconds."""

    def __init__(self, every: float = EVERY) -> None:
        self.every, self.last = every, float("-inf")

    def maybe(self, app: Flask) -> dict[str, int] | None:
        if time.monotonic() - self.last < self.every:
            return None
        self.last = time.monotonic()
        try:
            return purge(app.extensions["engine"], retention_days(app.config))
        except Exception:
            log.exception("retention purge failed; tried again next hour")
            return None


@click.command("purge")
@click.option("--days", type=int, default=None, help="Instead of MESSAGE_RETENTION_DAYS.")
@with_appcontext
def purge_command(days: int | None) -> None:
    """Delete caregivers' words and numbers older than the retention period now (the worker does it hourly)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    days = days or retention_days(app.config)
    done = purge(app.extensions["engine"], days)
    click.echo(f"older than {days} days: " + ", ".join(f"{n} {kind}" for kind, n in done.items()))
