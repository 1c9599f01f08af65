"""One inbound message, any channel: remembered once, answered, escalated. Never fails to answer.

A retry of a known message id gets the stored reply. Otherwise one query reads the sender's state,
the conversation core answers, and:

- an escalation is written before the answer leaves, in one transaction with its message record and
  its alerts, and committed durably;
- the message record and the sender's new state are handed to a :class:`Recorder`, which writes them
  on a background thread in batches (group commit), right away when traffic is light. This keeps a
  burst of texts from queueing behind one disk flush each, at the price of a few milliseconds between
  answer and record, during which a retry is still recognised from memory.

If the database fails at any step the caregiver still gets the core's answer, which for a symptom is
the escalation with the care-team number.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from .alerts import alert_numbers, alert_rows
from .conversation import LAST_RESORT, Assistant, State
from .logs import mask_phone
from .models import Alert, Escalation, InboundMessage, Sender, utcnow
from .segments import SmsSize, measure

log = logging.getLogger(__name__)
SENDERS, INBOUND, ESCALATIONS, ALERTS = (Sender.__table__, InboundMessage.__table__, Escalation.__table__,
                                         Alert.__table__)
BATCH = 500  # most rows one group commit writes


@dataclass(frozen=True)
class Outcome:
    text: str | None  # None: send nothing
    level: str
    topic: str | None
    locale: str
    duplicate: bool = False  # a retry of a message already answered

    @cached_property
    def size(self) -> SmsSize:
        return measure(self.text or "")

    @property
    def segments(self) -> int:
        return self.size.segments if self.text else 0

    @property
    def encoding(self) -> str:
        return self.size.encoding


def handle(app: Flask, message_sid: str, phone: str, text: str, media: int = 0) -> Outcome:
    """Answer one inbound message. Never raises."""
    try:
        return _handle(app, message_sid, phone, text, media)
    except Exception:
        log.exception("inbound handling failed", extra={"event": "inbound.error", "phone": mask_phone(phone)})
        settings = app.extensions["assistant"].settings
        values = {"care_team": settings.care_team_phone, "emergency": settings.emergency_number}
        return Outcome(LAST_RESORT["none"].format(**values), "none", None, "en")


class RawStatement:
    """A statement compiled once by SQLAlchemy for the engine's dialect and run on the pooled DBAPI
    connection: on the per-text path this costs a tenth of SQLAlchemy's own execution machinery."""

    def __init__(self, statement, dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None
        self.sqlite = dialect.name == "sqlite"

    def params(self, values: dict[str, Any]):
        if self.order is None:
            return values
        if self.sqlite:  # datetimes stored the way SQLAlchemy's SQLite DateTime type stores them
            return tuple(_sqlite(values[k]) for k in self.order)
        return tuple(values[k] for k in self.order)


def _sqlite(value: Any) -> Any:
    return f"{value:%Y-%m-%d %H:%M:%S.%f}" if isinstance(value, datetime) else value


# One round trip: the sender's state and, if this message id was already answered, that answer.
_one = select(literal_column("1").label("one")).subquery()
READ = (
    select(SENDERS.c.locale, SENDERS.c.locale_explicit, SENDERS.c.menu, SENDERS.c.more, SENDERS.c.opted_out,
           INBOUND.c.message_sid.label("seen_sid"), INBOUND.c.reply.label("seen_reply"),
           INBOUND.c.level.label("seen_level"), INBOUND.c.topic.label("seen_topic"),
           INBOUND.c.locale.label("seen_locale"))
    .select_from(_one.outerjoin(SENDERS, SENDERS.c.phone == bindparam("phone"))
                 .outerjoin(INBOUND, INBOUND.c.message_sid == bindparam("sid")))
)


def _handle(app: Flask, message_sid: str, phone: str, text: str, media: int) -> Outcome:
    assistant: Assistant = app.extensions["assistant"]
    recorder: Recorder = app.extensions["recorder"]
    remembered = recorder.answered(message_sid)
    if remembered is not None:
        return _replay(remembered, message_sid, phone)
    # A state still waiting to be written is newer than the stored one. Looked up before the read: once
    # it is gone from memory, it is committed, so the read sees it.
    pending = recorder.state(phone)
    state, db_ok = pending or State(), True
    try:
        row = recorder.read(phone, message_sid)
        if row.seen_sid is not None:
            return _replay(Outcome(row.seen_reply, row.seen_level, row.seen_topic, row.seen_locale, True),
                           message_sid, phone)
        if pending is None and (row.locale is not None or row.opted_out is not None):
            state = State(locale=row.locale, locale_explicit=bool(row.locale_explicit),
                          menu=tuple(row.menu.split()) if row.menu else (), more=row.more or "",
                          opted_out=bool(row.opted_out))
    except Exception:  # SQLAlchemy's errors, or the driver's own from a raw pooled connection
        db_ok = False
        log.exception("database unavailable; answering without memory",
                      extra={"event": "db.error", "phone": mask_phone(phone)})

    reply = assistant.reply(text, state, media=media)
    outcome = Outcome(reply.text, reply.level, reply.topic, reply.locale)
    log.info("inbound", extra={"event": "inbound", "phone": mask_phone(phone), "sid": message_sid,
                               "triage": reply.level, "topic": reply.topic, "locale": reply.locale,
                               "segments": outcome.segments, "failsafe": reply.failed})
    message = {"message_sid": message_sid, "phone": phone, "num_media": media, "level": reply.level,
               "topic": reply.topic, "locale": reply.locale, "reply": reply.text, "received_at": utcnow()}
    if reply.finding.escalates:
        if not db_ok:
            log.error("ESCALATION NOT RECORDED: database unavailable",
                      extra={"event": "escalation.unrecorded", "phone": mask_phone(phone), "sid": message_sid,
                             "triage": reply.level})
            return outcome
        escalation = {"level": reply.level, "locale": reply.locale, "topic": reply.topic,
                      "rules": ",".join(reply.finding.rules)[:255], "phone": phone, "text": text,
                      "message_sid": message_sid, "created_at": utcnow()}
        try:
            escalation_id = recorder.escalate(message, escalation, alert_numbers(app.config))
            log.warning("escalation", extra={"event": "escalation", "escalation_id": escalation_id,
                                             "triage": reply.level, "topic": reply.topic, "phone": mask_phone(phone)})
            message = None  # stored already
        except Duplicate:
            # The same MessageSid arrived twice at once: the other request stored it; answer as it did.
            row = recorder.read(phone, message_sid)
            if row.seen_sid is not None:
                return _replay(Outcome(row.seen_reply, row.seen_level, row.seen_topic, row.seen_locale, True),
                               message_sid, phone)
            raise
        except Exception:
            log.exception("ESCALATION NOT RECORDED", extra={"event": "escalation.unrecorded",
                                                            "phone": mask_phone(phone), "sid": message_sid})
            return outcome
    if db_ok:
        recorder.record(message, _sender_row(phone, state, reply.state), outcome, reply.state)
    return outcome


def _sender_row(phone: str, before: State, after: State) -> dict[str, Any]:
    now = utcnow()
    return {"phone": phone, "locale": after.locale, "locale_explicit": after.locale_explicit,
            "menu": " ".join(after.menu), "more": after.more, "opted_out": after.opted_out, "updated_at": now,
            "created_at": now, "opted_out_at": now if after.opted_out and not before.opted_out else None,
            "opted_in_at": now if before.opted_out and not after.opted_out else None}


def _replay(outcome: Outcome, message_sid: str, phone: str) -> Outcome:
    log.info("retry answered from memory", extra={"event": "inbound.retry", "sid": message_sid,
                                                  "phone": mask_phone(phone)})
    return Outcome(outcome.text, outcome.level, outcome.topic, outcome.locale, duplicate=True)


MESSAGE_COLUMNS = ("message_sid", "phone", "num_media", "level", "topic", "locale", "reply", "received_at")
SENDER_COLUMNS = ("phone", "locale", "locale_explicit", "menu", "more", "opted_out", "updated_at", "created_at",
                  "opted_out_at", "opted_in_at")


ESCALATION_COLUMNS = ("level", "locale", "topic", "rules", "phone", "text", "message_sid", "created_at")
ALERT_COLUMNS = ("escalation_id", "to_number", "body", "status", "attempts", "next_attempt_at", "created_at")


class Duplicate(Exception):
    """The message id is stored already: another request answered it."""


def _escalation_statements(dialect) -> tuple[RawStatement, RawStatement, RawStatement]:
    """The message, its escalation (returning its id) and the alerts, written before the answer leaves."""
    return (RawStatement(INBOUND.insert().values({c: bindparam(c) for c in MESSAGE_COLUMNS}), dialect),
            RawStatement(ESCALATIONS.insert().values({c: bindparam(c) for c in ESCALATION_COLUMNS})
                         .returning(ESCALATIONS.c.id), dialect),
            RawStatement(ALERTS.insert().values({c: bindparam(c) for c in ALERT_COLUMNS}), dialect))


def _statements(dialect) -> tuple[RawStatement, RawStatement, RawStatement]:
    """The read and the two writes of every text, as INSERT ... ON CONFLICT for the dialect."""
    insert = sqlite_insert if dialect.name == "sqlite" else pg_insert
    message = (insert(INBOUND).values({c: bindparam(c) for c in MESSAGE_COLUMNS})
               .on_conflict_do_nothing(index_elements=[INBOUND.c.message_sid]))
    sender = insert(SENDERS).values({c: bindparam(c) for c in SENDER_COLUMNS})
    updates: dict[str, Any] = {c: sender.excluded[c] for c in SENDER_COLUMNS if c not in ("phone", "created_at")}
    for c in ("opted_out_at", "opted_in_at"):  # only when given: the stored times stay otherwise
        updates[c] = func.coalesce(sender.excluded[c], SENDERS.c[c])
    upsert = sender.on_conflict_do_update(index_elements=[SENDERS.c.phone], set_=updates)
    return (RawStatement(READ, dialect), RawStatement(message, dialect), RawStatement(upsert, dialect))


class Recorder:
    """Writes message records and sender state on a background thread, many per transaction."""

    def __init__(self, engine: Engine, read_engine: Engine) -> None:
        self.engine, self.read_engine = engine, read_engine
        self._read, self._insert_message, self._upsert_sender = _statements(engine.dialect)
        self._escalation = _escalation_statements(engine.dialect)
        self._local = threading.local()
        self._queue: queue.Queue = queue.Queue()
        self._answered: dict[str, Outcome] = {}  # written soon; a retry meanwhile is answered from here
        self._states: dict[str, State] = {}  # the same for a sender's state: read your own writes
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        atexit.register(self.flush)

    def record(self, message: dict[str, Any] | None, sender: dict[str, Any], outcome: Outcome,
               state: State) -> None:
        with self._lock:
            if message is not None:
                self._answered[message["message_sid"]] = outcome
            self._states[sender["phone"]] = state
        self._ensure_thread()
        self._queue.put((message, sender, state))

    def read(self, phone: str, message_sid: str):
        """The sender's stored state and any stored answer to ``message_sid``, in one round trip, on a
        connection each request thread keeps (autocommit; a checkout per text would cost more than the
        query)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._local.conn = self.read_engine.raw_connection()
            self._local.pid = os.getpid()
        try:
            cur = conn.cursor()
            cur.execute(self._read.sql, self._read.params({"phone": phone, "sid": message_sid}))
            row = cur.fetchone()
            cur.close()
        except Exception:
            self._local.conn = None  # a broken connection is dropped; the next text opens another
            conn.invalidate()
            raise
        return _Row(*row)

    def escalate(self, message: dict[str, Any], escalation: dict[str, Any], numbers: list[str]) -> int:
        """Store the message, its escalation and one alert per on-call number in one durable
        transaction, now. Returns the escalation's id; raises :class:`Duplicate` for a known message id."""
        insert_message, insert_escalation, insert_alert = self._escalation
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                cur.execute(insert_message.sql, insert_message.params(message))
            except self.engine.dialect.loaded_dbapi.IntegrityError as exc:
                raise Duplicate(message["message_sid"]) from exc
            cur.execute(insert_escalation.sql, insert_escalation.params(escalation))
            escalation_id = cur.fetchone()[0]
            if numbers:
                rows = alert_rows(SimpleNamespace(id=escalation_id, **escalation), numbers)
                cur.executemany(insert_alert.sql, [insert_alert.params(r) for r in rows])
            cur.close()
            conn.commit()
            return escalation_id
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def answered(self, message_sid: str) -> Outcome | None:
        with self._lock:
            return self._answered.get(message_sid)

    def state(self, phone: str) -> State | None:
        """The sender's state if it is still waiting to be written."""
        with self._lock:
            return self._states.get(phone)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over is written (tests, shutdown). True if it was."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def _ensure_thread(self) -> None:
        # Started lazily, so that each gunicorn worker (a forked process) has its own.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:
                log.exception("could not record %d messages", len(batch), extra={"event": "db.error"})
            finally:
                with self._lock:
                    for message, sender, state in batch:
                        if message is not None:
                            self._answered.pop(message["message_sid"], None)
                        if self._states.get(sender["phone"]) is state:
                            del self._states[sender["phone"]]
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list) -> None:
        messages = [m for m, _s, _st in batch if m is not None]
        senders: dict[str, dict[str, Any]] = {}
        for _m, s, _st in batch:  # the last state of each sender wins; opt-out times are kept
            previous = senders.get(s["phone"])
            if previous is not None:
                s = {**s, "opted_out_at": s["opted_out_at"] or previous["opted_out_at"],
                     "opted_in_at": s["opted_in_at"] or previous["opted_in_at"]}
            senders[s["phone"]] = s
        for attempt in range(3):
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                if self.engine.dialect.name == "postgresql":
                    # A crash of the database server itself may lose the last moments of these (never
                    # an escalation, which is committed durably before its answer).
                    cur.execute("SET LOCAL synchronous_commit = off")
                if messages:
                    cur.executemany(self._insert_message.sql, [self._insert_message.params(m) for m in messages])
                cur.executemany(self._upsert_sender.sql, [self._upsert_sender.params(s) for s in senders.values()])
                cur.close()
                conn.commit()
                return
            except Exception:
                conn.rollback()
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
            finally:
                conn.close()


@dataclass(frozen=True)
class _Row:
    locale: str | None
    locale_explicit: bool | None
    menu: str | None
    more: str | None
    opted_out: bool | None
    seen_sid: str | None
    seen_reply: str | None
    seen_level: str | None
    seen_topic: str | None
    seen_locale: str | None


def init_app(app: Flask) -> None:
    app.extensions["recorder"] = Recorder(app.extensions["engine"], app.extensions["read_engine"])
