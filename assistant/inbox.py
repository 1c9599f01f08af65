"""One inbound message, any channel: remembered once, answered, escalated. Never fails to answer.

A retry of a known message id gets the stored reply. Otherwise one query reads the sender's state,
the conversation core answers, and everything to store is handed to the :class:`Recorder`, one writer
thread per process that commits many texts in one transaction (group commit):

- an escalation is urgent: its request waits until the transaction holding its message record, the
  escalation and its alerts has committed, so the answer leaves only once the care team's record
  exists. Texts waiting at that moment are committed with it;
- any other record waits a few milliseconds for company, so that a burst of texts costs a handful of
  commits rather than one each. Until it is written a retry is still recognised from memory.

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
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

from flask import Flask
from sqlalchemy import DateTime, bindparam, func, literal_column, select
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
BATCH = 500  # most texts one transaction writes
LINGER = 0.02  # seconds a record that nobody waits for may wait for others to share its commit
ESCALATION_WAIT = 5.0  # seconds a request waits for its escalation's commit (Twilio gives up at 15)


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
    """A statement compiled once by SQLAlchemy for the engine's dialect and run on a DBAPI connection:
    on the per-text path this costs a tenth of SQLAlchemy's own execution machinery."""

    def __init__(self, statement, dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None
        if self.order is not None:
            self._values = itemgetter(*self.order) if len(self.order) > 1 else lambda v: (v[self.order[0]],)
        # SQLite keeps datetimes as text, written the way SQLAlchemy's SQLite DateTime type writes them.
        self._dates = [i for i, k in enumerate(self.order or ()) if dialect.name == "sqlite"
                       and isinstance(compiled.binds[k].type, DateTime)]

    def params(self, values: dict[str, Any]):
        if self.order is None:
            return values
        row = self._values(values)
        if not self._dates:
            return row
        row = list(row)
        for i in self._dates:
            if row[i] is not None:
                row[i] = f"{row[i]:%Y-%m-%d %H:%M:%S.%f}"
        return row


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
    state, known = pending or State(), True
    try:
        row = recorder.read(phone, message_sid)
        if row.seen_sid is not None:
            return _replay(row.outcome, message_sid, phone)
        if pending is None and (row.locale is not None or row.opted_out is not None):
            state = State(locale=row.locale, locale_explicit=bool(row.locale_explicit),
                          menu=tuple(row.menu.split()) if row.menu else (), more=row.more or "",
                          opted_out=bool(row.opted_out))
    except Exception:  # SQLAlchemy's errors, or the driver's own from a raw pooled connection
        known = pending is not None
        log.exception("database unavailable; answering without memory",
                      extra={"event": "db.error", "phone": mask_phone(phone)})

    reply = assistant.reply(text, state, media=media)
    outcome = Outcome(reply.text, reply.level, reply.topic, reply.locale)
    log.info("inbound", extra={"event": "inbound", "phone": mask_phone(phone), "sid": message_sid,
                               "triage": reply.level, "topic": reply.topic, "locale": reply.locale,
                               "segments": outcome.segments, "failsafe": reply.failed})
    now = utcnow()
    message = {"message_sid": message_sid, "phone": phone, "num_media": media, "level": reply.level,
               "topic": reply.topic, "locale": reply.locale, "reply": reply.text, "received_at": now}
    # Without the stored state the new one is a guess: writing it would overwrite a chosen language.
    sender = _sender_row(phone, state, reply.state, now) if known else None
    if not reply.finding.escalates:
        recorder.record(message, sender, outcome, reply.state)
        return outcome
    escalation = {"level": reply.level, "locale": reply.locale, "topic": reply.topic,
                  "rules": ",".join(reply.finding.rules)[:255], "phone": phone, "text": text,
                  "message_sid": message_sid, "created_at": now}
    try:
        escalation_id = recorder.escalate(message, sender, outcome, reply.state, escalation,
                                          alert_numbers(app.config))
        log.warning("escalation", extra={"event": "escalation", "escalation_id": escalation_id,
                                         "triage": reply.level, "topic": reply.topic, "phone": mask_phone(phone)})
    except Duplicate:
        # The same MessageSid arrived twice at once and the other request stored it: answer as it did
        # (or, if that cannot be read, with this answer to the same text).
        try:
            row = recorder.read(phone, message_sid)
        except Exception:
            row = None
        return _replay(row.outcome if row is not None and row.seen_sid is not None else outcome, message_sid, phone)
    except Exception:
        log.exception("ESCALATION NOT CONFIRMED: it may not be recorded; the caregiver was told to call",
                      extra={"event": "escalation.unrecorded", "phone": mask_phone(phone), "sid": message_sid,
                             "triage": reply.level})
    return outcome


def _sender_row(phone: str, before: State, after: State, now: datetime) -> dict[str, Any]:
    return {"phone": phone, "locale": after.locale, "locale_explicit": after.locale_explicit,
            "menu": " ".join(after.menu), "more": after.more, "opted_out": after.opted_out, "updated_at": now,
            "created_at": now, "opted_out_at": now if after.opted_out and not before.opted_out else None,
            "opted_in_at": now if before.opted_out and not after.opted_out else None}


def _replay(outcome: Outcome, message_sid: str, phone: str) -> Outcome:
    log.info("retry answered from memory", extra={"event": "inbound.retry", "sid": message_sid,
                                                  "phone": mask_phone(phone)})
    return Outcome(outcome.text, outcome.level, outcome.topic, outcome.locale, duplicate=True)


class Duplicate(Exception):
    """The message id is stored already: another request answered it."""


@dataclass(eq=False)
class _Item:
    """What one text leaves to write. ``done`` is set once it is committed (or has failed), for a
    request that waits: an escalation, or :meth:`Recorder.flush`."""

    message: dict[str, Any] | None
    sender: dict[str, Any] | None
    state: State | None = None
    escalation: dict[str, Any] | None = None
    numbers: tuple[str, ...] = ()
    done: threading.Event | None = None
    escalation_id: int | None = None
    error: BaseException | None = None
    stop: bool = False  # the writer ends after this batch (close)

    @property
    def urgent(self) -> bool:
        return self.done is not None


class Recorder:
    """The one writer of inbound records, sender state, escalations and alerts in this process."""

    def __init__(self, engine: Engine, read_engine: Engine) -> None:
        self.engine, self.read_engine = engine, read_engine
        self._read, self._statements = RawStatement(READ, engine.dialect), _statements(engine.dialect)
        self._conn = None  # the writer thread's own connection: its statements stay prepared
        self._sqlite_full = False  # PRAGMA synchronous=FULL on it
        self._local = threading.local()
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._answered: dict[str, Outcome] = {}  # written soon; a retry meanwhile is answered from here
        self._states: dict[str, State] = {}  # the same for a sender's state: read your own writes
        self._lock = threading.Lock()
        self._reads: list = []  # every request thread's read connection, to close them
        self._thread: threading.Thread | None = None
        self._pid = 0
        atexit.register(self.flush)

    def close(self) -> None:
        """Write what is queued, stop the writer and close this recorder's connections (tests, shutdown)."""
        atexit.unregister(self.flush)
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            stop = _Item(None, None, done=threading.Event(), stop=True)
            self._queue.put(stop)
            self._thread.join(timeout=10)
        with self._lock:
            connections, self._reads = [*self._reads, self._conn], []
        self._conn, self._local = None, threading.local()
        for conn in connections:
            if conn is not None:
                with suppress(Exception):
                    conn.close()

    # -- what requests call ---------------------------------------------------------------------
    def read(self, phone: str, message_sid: str) -> _Row:
        """The sender's stored state and any stored answer to ``message_sid``, in one round trip, on a
        connection each request thread keeps (autocommit; a checkout per text would cost more than the
        query)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._local.conn = self.read_engine.raw_connection()
            self._local.pid = os.getpid()
            with self._lock:
                self._reads.append(conn)
        try:
            cur = conn.cursor()
            cur.execute(self._read.sql, self._read.params({"phone": phone, "sid": message_sid}))
            row = cur.fetchone()
            cur.close()
        except Exception:
            self._local.conn = None  # a broken connection is dropped; the next text opens another
            with self._lock:
                if conn in self._reads:
                    self._reads.remove(conn)
            conn.invalidate()
            raise
        return _Row(*row)

    def record(self, message: dict[str, Any], sender: dict[str, Any] | None, outcome: Outcome,
               state: State) -> None:
        """Store ``message`` (and the sender's new state) soon; returns at once."""
        self._put(_Item(message, sender, state), outcome)

    def escalate(self, message: dict[str, Any], sender: dict[str, Any] | None, outcome: Outcome, state: State,
                 escalation: dict[str, Any], numbers: list[str]) -> int:
        """Store the message, its escalation and one alert per on-call number in one transaction, and
        return once it is committed, with the escalation's id. Raises :class:`Duplicate` for a message id
        stored already, and the database's error (or ``TimeoutError``) when it could not be written."""
        item = _Item(message, sender, state, escalation, tuple(numbers), threading.Event())
        self._put(item, outcome)
        if not item.done.wait(ESCALATION_WAIT):
            raise TimeoutError(f"escalation not committed within {ESCALATION_WAIT:.0f} s")
        if item.error is not None:
            raise item.error
        if item.escalation_id is None:
            raise RuntimeError("escalation not written")
        return item.escalation_id

    def answered(self, message_sid: str) -> Outcome | None:
        with self._lock:
            return self._answered.get(message_sid)

    def state(self, phone: str) -> State | None:
        """The sender's state if it is still waiting to be written."""
        with self._lock:
            return self._states.get(phone)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything handed over so far, now, and wait for it (tests, shutdown). True if done."""
        if not self._queue.unfinished_tasks:
            return True
        self._ensure_thread()
        barrier = _Item(None, None, done=threading.Event())
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    def _put(self, item: _Item, outcome: Outcome) -> None:
        with self._lock:
            self._answered[item.message["message_sid"]] = outcome
            if item.sender is not None:
                self._states[item.sender["phone"]] = item.state
        self._ensure_thread()
        self._queue.put(item)

    # -- the writer thread ----------------------------------------------------------------------
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
            batch = self._next_batch()
            try:
                self._commit(batch)
            finally:
                with self._lock:
                    for item in batch:
                        if item.message is not None:
                            self._answered.pop(item.message["message_sid"], None)
                        if item.sender is not None and self._states.get(item.sender["phone"]) is item.state:
                            del self._states[item.sender["phone"]]
                for item in batch:
                    if item.done is not None:
                        item.done.set()
                    self._queue.task_done()
            if any(item.stop for item in batch):
                return

    def _next_batch(self) -> list[_Item]:
        """What waits now; when nobody waits on it, also what arrives within LINGER."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + (0.0 if batch[0].urgent else LINGER)
        while len(batch) < BATCH:
            try:
                wait = deadline - time.monotonic()
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            if item.urgent:
                deadline = 0.0
        return batch

    def _commit(self, batch: list[_Item]) -> None:
        """Write ``batch`` in one transaction; if that fails twice, each text on its own, so that one bad
        row cannot keep an escalation out of the record."""
        for attempt in range(2):
            try:
                self._write(batch)
                return
            except Exception as exc:
                error = exc
                if attempt == 0:
                    time.sleep(0.05)
        if len(batch) > 1:
            for item in batch:
                if item.message is not None:
                    try:
                        self._write([item])
                    except Exception as exc:
                        self._failed([item], exc)
            return
        self._failed(batch, error)

    def _failed(self, items: list[_Item], exc: Exception) -> None:
        log.error("could not record %d texts (%s)", len(items), type(exc).__name__,
                  exc_info=exc, extra={"event": "db.error"})
        for item in items:
            item.error = exc

    def _write(self, batch: list[_Item]) -> None:
        items = [i for i in batch if i.message is not None]
        if not items:
            return
        messages = list({i.message["message_sid"]: i.message for i in items}.values())
        senders: dict[str, dict[str, Any]] = {}
        for item in items:  # the last state of each sender wins; opt-out times are kept
            s = item.sender
            if s is None:
                continue
            previous = senders.get(s["phone"])
            if previous is not None:
                s = {**s, "opted_out_at": s["opted_out_at"] or previous["opted_out_at"],
                     "opted_in_at": s["opted_in_at"] or previous["opted_in_at"]}
            senders[s["phone"]] = s
        escalating = [i for i in items if i.escalation is not None]
        message, escalation, alert, sender = self._statements
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.raw_connection()
        postgresql = self.engine.dialect.name == "postgresql"
        try:
            if not postgresql and self._sqlite_full != bool(escalating):
                # SQLite (WAL) syncs the disk at each commit only with synchronous=FULL: then a commit
                # survives a power cut too. That is paid for the commits that hold escalations.
                self._sqlite_full = bool(escalating)
                conn.cursor().execute(f"PRAGMA synchronous={'FULL' if escalating else 'NORMAL'}")
            # PostgreSQL (which syncs every commit): statements go out without waiting for each other's
            # answers, so a transaction costs a round trip for each escalation's id and one to commit.
            with conn.driver_connection.pipeline() if postgresql else nullcontext():
                cur = conn.cursor()
                cur.executemany(message.sql, [message.params(m) for m in messages])
                for item in escalating:
                    # The escalation of a message id stored already (by a retry answered elsewhere) is
                    # there too: the unique message id says so, and nothing is written twice.
                    cur.execute(escalation.sql, escalation.params(item.escalation))
                    row = cur.fetchone()
                    if row is None:
                        item.error = Duplicate(item.message["message_sid"])
                        continue
                    item.escalation_id, item.error = row[0], None
                    rows = alert_rows(SimpleNamespace(id=row[0], **item.escalation), list(item.numbers))
                    if rows:
                        cur.executemany(alert.sql, [alert.params(r) for r in rows])
                if senders:
                    cur.executemany(sender.sql, [sender.params(r) for r in senders.values()])
                cur.close()
                conn.commit()
        except Exception:
            for item in escalating:
                item.escalation_id = None
            self._conn, self._sqlite_full = None, False  # a fresh connection next time: this one may be broken
            with suppress(Exception):
                conn.invalidate()
            raise


MESSAGE_COLUMNS = ("message_sid", "phone", "num_media", "level", "topic", "locale", "reply", "received_at")
SENDER_COLUMNS = ("phone", "locale", "locale_explicit", "menu", "more", "opted_out", "updated_at", "created_at",
                  "opted_out_at", "opted_in_at")
ESCALATION_COLUMNS = ("level", "locale", "topic", "rules", "phone", "text", "message_sid", "created_at")
ALERT_COLUMNS = ("escalation_id", "to_number", "body", "status", "attempts", "next_attempt_at", "created_at")


def _statements(dialect) -> tuple[RawStatement, RawStatement, RawStatement, RawStatement]:
    """The writes: a message once, an escalation once per message (returning its id), an alert, and
    the sender's state (insert or update), compiled for the dialect."""
    insert = sqlite_insert if dialect.name == "sqlite" else pg_insert

    def values(table, columns):
        return insert(table).values({c: bindparam(c) for c in columns})

    message = values(INBOUND, MESSAGE_COLUMNS).on_conflict_do_nothing(index_elements=[INBOUND.c.message_sid])
    escalation = (values(ESCALATIONS, ESCALATION_COLUMNS)
                  .on_conflict_do_nothing(index_elements=[ESCALATIONS.c.message_sid]).returning(ESCALATIONS.c.id))
    sender = values(SENDERS, SENDER_COLUMNS)
    updates: dict[str, Any] = {c: sender.excluded[c] for c in SENDER_COLUMNS if c not in ("phone", "created_at")}
    for c in ("opted_out_at", "opted_in_at"):  # only when given: the stored times stay otherwise
        updates[c] = func.coalesce(sender.excluded[c], SENDERS.c[c])
    upsert = sender.on_conflict_do_update(index_elements=[SENDERS.c.phone], set_=updates)
    return (RawStatement(message, dialect), RawStatement(escalation, dialect),
            RawStatement(ALERTS.insert().values({c: bindparam(c) for c in ALERT_COLUMNS}), dialect),
            RawStatement(upsert, dialect))


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

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.seen_reply, self.seen_level, self.seen_topic, self.seen_locale, True)


def init_app(app: Flask) -> None:
    app.extensions["recorder"] = Recorder(app.extensions["engine"], app.extensions["read_engine"])
