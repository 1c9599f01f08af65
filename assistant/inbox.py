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
the escalation with the care-team number, within seconds: reads and writes have deadlines (a watchdog
shuts the connection of a database that accepts and never answers), and what could not be written is
kept in the durable local spool (``spool.py``) before the answer leaves, then written back once the
database answers again. While it is away, escalations older than ``DIRECT_ALERT_AFTER`` are alerted
straight through Twilio from the spool. An opt-out (STOP) or opt-in (START) is as urgent as an
escalation: its answer leaves once it is committed or spooled. A text writes only the sender fields it
changes, and an opt-out is undone only by a later opt-in.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

from flask import Flask
from sqlalchemy import Boolean, DateTime, and_, bindparam, case, false, literal_column, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from .alerts import alert_body, alert_numbers, alert_rows, record_status, send_direct
from .conversation import Assistant, Reply, State, last_resort
from .logs import mask_phone
from .models import Alert, Escalation, InboundMessage, Sender, UnansweredText, utcnow
from .segments import SmsSize, measure
from .spool import Breaker, DatabaseAway, Spool, Watchdog, abort, unavailable

log = logging.getLogger(__name__)
SENDERS, INBOUND, ESCALATIONS, ALERTS = (Sender.__table__, InboundMessage.__table__, Escalation.__table__,
                                         Alert.__table__)
BATCH = 500  # most texts one transaction writes
LINGER = 0.02  # seconds a record that nobody waits for may wait for others to share its commit
# A symptom text is answered within 5 s whatever the database does (Twilio gives up at 15): a read
# waits READ_TIMEOUT at most (a new connection libpq's connect_timeout, 2 s), then the request waits
# ESCALATION_WAIT for the commit before it spools the escalation itself.
READ_TIMEOUT = 1.0
ESCALATION_WAIT = 2.0
ANSWER_BUDGET = 3.5  # seconds from a text's arrival to its answer, whatever the database does
WRITE_TIMEOUT = 3.0  # the writer's transaction; longer, and it is cut and its texts spooled
IDLE_READS = 8  # read connections kept for reuse; a thread per request (the dev server) takes turns
DRAIN_INTERVAL = 1.0  # seconds between attempts to write the spool back
# An escalation spooled this long while the database is still away is alerted directly (a blip that
# ends sooner leaves it to the outbox, with its retries and delivery status).
DIRECT_ALERT_AFTER = 3.0
SID_MAX, PHONE_MAX = 64, 40  # the columns' lengths
SIMULATED_SID = "SIM"  # the phone simulator's message ids; Twilio's start with SM or MM
WATCHDOG = Watchdog()  # one thread per process, for every recorder in it


@dataclass(frozen=True)
class Outcome:
    text: str | None  # None: send nothing
    level: str
    topic: str | None
    locale: str
    duplicate: bool = False  # a retry of a message already answered
    menu: tuple[str, ...] = ()  # what each number of a list in the answer stands for (not stored)
    failed: bool = False  # handling failed: the text is the last resort, or an escalation made without memory
    pieces: tuple[tuple[str, str], ...] = ()  # a spoken answer's (language, text) parts (not stored)

    @cached_property
    def size(self) -> SmsSize:
        return measure(self.text or "")

    @property
    def segments(self) -> int:
        return self.size.segments if self.text else 0

    @property
    def encoding(self) -> str:
        return self.size.encoding


def clean(value: str | None, limit: int | None = None) -> str:
    """``value`` as every database column takes it: no NUL (PostgreSQL refuses it in text), lone
    surrogates replaced, and at most ``limit`` characters. An over-long value keeps its start and a hash
    of the whole, so that two long ids stay two ids."""
    value = (value or "").replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(value) > limit:
        digest = hashlib.sha1(value.encode("utf-8")).hexdigest()[:12]
        value = value[:limit - 13] + "~" + digest
    return value


def handle(app: Flask, message_sid: str, phone: str, text: str, media: int = 0, *,
           call: State | None = None) -> Outcome:
    """Answer one inbound message. Never raises.

    ``call``: the words come from a phone call (a step's id as ``message_sid``), in this state (the
    call's language and the list the caller picks from). The answer is the spoken one, in the call's
    language; the record and any escalation say channel "voice". The sender's stored state is neither
    used nor changed: a call cannot opt a number out of texts, nor into them."""
    try:
        message_sid, phone, text = clean(message_sid, SID_MAX), clean(phone, PHONE_MAX), clean(text)
        return _handle(app, message_sid, phone, text, media, call)
    except Exception:
        log.exception("inbound handling failed", extra={"event": "inbound.error", "phone": mask_phone(phone)})
        return _failsafe(app, message_sid, phone, text, media, call)


def _failsafe(app: Flask, message_sid: str, phone: str, text: str, media: int, call: State | None) -> Outcome:
    """The answer when handling failed part-way (the memory, the record, anything around the core). Triage
    does not depend on that part: the core (which never raises) answers again with nothing remembered, so
    a symptom still gets its escalation, which is then recorded and alerted if the recorder can take it.
    Anything else gets the last-resort words with the care-team number. Nothing goes to a number this
    machine saw opt out."""
    assistant: Assistant = app.extensions["assistant"]
    recorder: Recorder | None = app.extensions.get("recorder")
    reply: Reply | None = None
    try:
        if call is not None:
            reply = assistant.spoken.reply(text, call, lang=call.locale)
        else:
            reply = assistant.reply(text, State(), media=media)
    except Exception:  # the core never raises; this guards what it was handed
        log.exception("failsafe answer failed", extra={"event": "inbound.error", "phone": mask_phone(phone)})
    opted_out = call is None and recorder is not None and recorder.opted_out_locally(phone) is True
    if reply is not None and reply.finding.escalates:
        outcome = Outcome(None if opted_out else reply.text, reply.level, reply.topic, reply.locale, failed=True,
                          pieces=reply.pieces)
        try:
            channel = "sms" if call is None else "voice"
            message = {**_message_row(message_sid, phone, media, reply, channel, utcnow()), "reply": outcome.text}
            recorder.escalate(message, None, outcome, reply.state,
                              _escalation_row(message, text, reply, unanswered=outcome.text is None),
                              alert_numbers(app.config))
        except Duplicate:
            pass  # stored before the failure: its alerts are written already
        except Exception:
            log.exception("ESCALATION NOT CONFIRMED: it may not be recorded; the caregiver was told to call",
                          extra={"event": "escalation.unrecorded", "phone": mask_phone(phone), "sid": message_sid,
                                 "triage": reply.level})
        return outcome
    text_out = None if opted_out else last_resort("none", assistant.settings, spoken=call is not None)
    return Outcome(text_out, "none", None, "en", failed=True)


def _message_row(message_sid: str, phone: str, media: int, reply: Reply, channel: str, now: datetime) -> dict:
    return {"message_sid": message_sid, "phone": phone, "num_media": media, "level": reply.level,
            "topic": reply.topic, "locale": reply.locale, "reply": reply.text, "received_at": now,
            "channel": channel}


def _escalation_row(message: dict, text: str, reply: Reply, *, unanswered: bool) -> dict:
    return {"level": reply.level, "locale": reply.locale, "topic": reply.topic,
            "rules": ",".join(reply.finding.rules)[:255], "phone": message["phone"], "text": text,
            "message_sid": message["message_sid"], "created_at": message["received_at"],
            "channel": message["channel"],
            "unanswered": unanswered}  # not stored: it tells on-call staff no reply went out


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
           SENDERS.c.reply_locale,
           INBOUND.c.message_sid.label("seen_sid"), INBOUND.c.reply.label("seen_reply"),
           INBOUND.c.level.label("seen_level"), INBOUND.c.topic.label("seen_topic"),
           INBOUND.c.locale.label("seen_locale"))
    .select_from(_one.outerjoin(SENDERS, SENDERS.c.phone == bindparam("phone"))
                 .outerjoin(INBOUND, INBOUND.c.message_sid == bindparam("sid")))
)


def _handle(app: Flask, message_sid: str, phone: str, text: str, media: int, call: State | None = None) -> Outcome:
    started = time.monotonic()
    assistant: Assistant = app.extensions["assistant"]
    recorder: Recorder = app.extensions["recorder"]
    remembered = recorder.answered(message_sid)
    if remembered is not None:
        return _replay(remembered, message_sid, phone)  # from memory: whole, with its list and parts

    def again() -> Reply | None:  # a call's step made again (see _replay)
        return assistant.spoken.reply(text, call, lang=call.locale) if call is not None else None

    # A state still waiting to be written is newer than the stored one. Looked up before the read: once
    # it is gone from memory, it is committed, so the read sees it.
    pending = recorder.state(phone)
    state, known = pending or State(), True
    try:
        row = recorder.read(phone, message_sid)
        if row.seen_sid is not None:
            return _replay(row.outcome, message_sid, phone, again())
        if call is None and pending is None and (row.locale is not None or row.opted_out is not None):
            state = State(locale=row.locale, locale_explicit=bool(row.locale_explicit),
                          menu=tuple(row.menu.split()) if row.menu else (), more=row.more or "",
                          reply_locale=row.reply_locale,
                          opted_out=bool(row.opted_out))
            if state.opted_out:
                recorder.saw_opted_out(phone)
    except Exception as exc:  # SQLAlchemy's errors, the driver's own, a timeout, or the breaker
        known = pending is not None
        log.warning("database unavailable; answering without memory (%s)", type(exc).__name__,
                    extra={"event": "db.error", "phone": mask_phone(phone)})

    channel = "sms" if call is None else "voice"
    if call is not None:
        # A caller is always answered, by voice, whatever the database knows of their texts.
        state = call
        reply = assistant.spoken.reply(text, call, lang=call.locale)
    elif known:
        reply = assistant.reply(text, state, media=media)
    else:
        reply, state = _answer_unknown(assistant, recorder, phone, text, media)
    outcome = Outcome(reply.text, reply.level, reply.topic, reply.locale, menu=reply.state.menu,
                      failed=reply.failed, pieces=reply.pieces)
    log.info("inbound", extra={"event": "inbound", "phone": mask_phone(phone), "sid": message_sid,
                               "triage": reply.level, "topic": reply.topic, "locale": reply.locale,
                               "segments": outcome.segments, "failsafe": reply.failed, "known": known,
                               "channel": channel})
    now = utcnow()
    message = _message_row(message_sid, phone, media, reply, channel, now)
    if reply.unanswered and text.strip():  # kept (for the retention period) to show coordinators what is missing
        message["unanswered"] = {"message_sid": message_sid, "phone": phone, "locale": reply.locale,
                                 "kind": reply.unanswered, "text": text[:2000], "received_at": now}
    sender = _sender_row(phone, state, reply, now, known) if call is None else None
    opt_change = sender is not None and bool(sender["opted_out_at"] or sender["opted_in_at"])
    if opt_change:
        recorder.note_opt_out(phone, reply.state.opted_out, now)
    if not reply.finding.escalates:
        try:
            recorder.record(message, sender, outcome, reply.state, wait=opt_change, started=started)
        except Exception:
            log.exception("OPT-OUT NOT CONFIRMED: it may not be recorded",
                          extra={"event": "optout.unrecorded", "phone": mask_phone(phone), "sid": message_sid})
        return outcome
    escalation = _escalation_row(message, text, reply, unanswered=reply.text is None)
    try:
        escalation_id = recorder.escalate(message, sender, outcome, reply.state, escalation,
                                          alert_numbers(app.config), started=started)
        log.warning("escalation" if escalation_id is not None else "escalation spooled: written once the "
                    "database is back", extra={"event": "escalation" if escalation_id is not None
                                               else "escalation.spooled", "escalation_id": escalation_id,
                                               "triage": reply.level, "topic": reply.topic,
                                               "phone": mask_phone(phone)})
    except Duplicate:
        # The same MessageSid arrived twice at once and the other request stored it: answer as it did
        # (or, if that cannot be read, with this answer to the same text).
        try:
            row = recorder.read(phone, message_sid)
        except Exception:
            row = None
        if row is not None and row.seen_sid is not None:
            return _replay(row.outcome, message_sid, phone, again())
        return _replay(outcome, message_sid, phone)
    except Exception:
        log.exception("ESCALATION NOT CONFIRMED: it may not be recorded; the caregiver was told to call",
                      extra={"event": "escalation.unrecorded", "phone": mask_phone(phone), "sid": message_sid,
                             "triage": reply.level})
    return outcome


def record_step(app: Flask, step_sid: str, phone: str, locale: str, step: str, said: str | None, *,
                language: str | None = None, texts: tuple[tuple[str, str], ...] = ()) -> None:
    """Keep one step of a call that is not an answer to the caller's words (the language menu, a key,
    the transfer's outcome) in the inbound record, under the step's id: what was said, in which language.
    ``language``: the language the caller chose, remembered for their number as a LANG text would be
    (waited for, like texts, so that the next call or text reads it).
    ``texts``: (number, body) texts the caller asked for, written to the outbox in the same transaction
    as the step and only with it, so that a retried step sends nothing twice; then this returns once
    they are committed or spooled. Never raises: a call goes on without its record."""
    recorder: Recorder = app.extensions["recorder"]
    try:
        step_sid, phone = clean(step_sid, SID_MAX), clean(phone, PHONE_MAX)
        now = utcnow()
        message = {"message_sid": step_sid, "phone": phone, "num_media": 0, "level": "none", "topic": step[:40],
                   "locale": locale, "reply": said, "received_at": now, "channel": "voice"}
        sender = None
        if language:
            sender = {"phone": phone, "locale": language, "locale_explicit": True, "menu": "", "more": "",
                      "opted_out": False, "updated_at": now, "created_at": now, "opted_out_at": None,
                      "opted_in_at": None, "set_locale": True, "set_menu": False, "set_more": False}
        outcome = Outcome(said, "none", step, locale)
        # No pending state: the language is all this writes, and a text meanwhile must read the rest
        # (an opt-out above all) from the database.
        recorder.record(message, sender, outcome, None, wait=bool(texts or language), started=time.monotonic(),
                        texts=tuple((clean(to, PHONE_MAX), clean(body)) for to, body in texts))
    except Exception:
        log.exception("call step not recorded", extra={"event": "voice.unrecorded", "sid": step_sid,
                                                       "phone": mask_phone(phone)})


def sender_state(app: Flask, phone: str) -> State | None:
    """What is stored for ``phone`` (language, opt-out), or None if nothing is or the database cannot
    say in time. For a call: its caller's language, and whether texts may be sent to them."""
    recorder: Recorder = app.extensions["recorder"]
    pending = recorder.state(phone)
    if pending is not None:
        return pending
    try:
        row = recorder.read(clean(phone, PHONE_MAX), "")
    except Exception as exc:
        log.warning("database unavailable; caller not looked up (%s)", type(exc).__name__,
                    extra={"event": "db.error", "phone": mask_phone(phone)})
        opted_out = recorder.opted_out_locally(phone)
        return State(opted_out=True) if opted_out else None
    if row.locale is None and row.opted_out is None:
        return None
    return State(locale=row.locale, locale_explicit=bool(row.locale_explicit), opted_out=bool(row.opted_out))


def _answer_unknown(assistant: Assistant, recorder: Recorder, phone: str, text: str,
                    media: int) -> tuple[Reply, State]:
    """The reply when the sender's state cannot be read, and the state it assumed. The number may have
    opted out before the database went away, so the safe default is to send nothing, with two
    exceptions: a symptom gets its escalation (being told to call the care team now outweighs the risk,
    and Twilio itself blocks sends to a number that opted out with its keywords, error 21610), unless
    this machine saw the number opt out; and START gets its confirmation. A number this machine last
    saw opt in (START) is answered as usual."""
    locally = recorder.opted_out_locally(phone)
    if locally:
        assumed = State(opted_out=True)
        return assistant.reply(text, assumed, media=media), assumed
    assumed = State()
    reply = assistant.reply(text, assumed, media=media)
    if reply.text is None or reply.finding.escalates or reply.topic == "start" or locally is False:
        return reply, assumed
    return replace(reply, text=None), assumed


def _sender_row(phone: str, before: State, reply: Reply, now: datetime, known: bool) -> dict[str, Any] | None:
    """Only what this text changed; None if nothing. Without the stored state (``known`` False) the
    rest of the state is a guess, so only an opt-out or opt-in is written."""
    after = reply.state
    opt_out = reply.topic == "stop" or (after.opted_out and not before.opted_out)
    opt_in = reply.topic == "start" or (before.opted_out and not after.opted_out)
    set_locale = known and (after.locale, after.locale_explicit) != (before.locale, before.locale_explicit)
    set_menu, set_more = known and after.menu != before.menu, known and after.more != before.more
    set_reply_locale = known and after.reply_locale != before.reply_locale
    if not (opt_out or opt_in or set_locale or set_menu or set_more or set_reply_locale):
        return None
    return {"phone": phone, "locale": after.locale, "locale_explicit": after.locale_explicit,
            "menu": " ".join(after.menu), "more": after.more, "opted_out": after.opted_out, "updated_at": now,
            "created_at": now, "opted_out_at": now if opt_out else None, "opted_in_at": now if opt_in else None,
            "set_locale": set_locale, "set_menu": set_menu, "set_more": set_more,
            "reply_locale": after.reply_locale, "set_reply_locale": set_reply_locale}


def _replay(outcome: Outcome, message_sid: str, phone: str, again: Reply | None = None) -> Outcome:
    """The stored answer to a message id seen before. A call's step repeated by Twilio needs what is not
    stored (the list a "did you mean" offers, each part's language) for the same TwiML: ``again`` is the
    core's answer to the same words made again (it has no side effects), used when it is the stored one
    (same level and topic); otherwise, the stored answer stands as it is."""
    log.info("retry answered from memory", extra={"event": "inbound.retry", "sid": message_sid,
                                                  "phone": mask_phone(phone)})
    if again is not None and (again.level, again.topic) == (outcome.level, outcome.topic):
        return Outcome(again.text, again.level, again.topic, again.locale, True, menu=again.state.menu,
                       failed=again.failed, pieces=again.pieces)
    return replace(outcome, duplicate=True)


class Duplicate(Exception):
    """The message id is stored already: another request answered it."""


@dataclass(eq=False)
class _Item:
    """What one text leaves to write. ``done`` is set once it is committed, spooled or has failed, for a
    request that waits: an escalation, an opt-out, or :meth:`Recorder.flush`."""

    message: dict[str, Any] | None
    sender: dict[str, Any] | None
    state: State | None = None
    escalation: dict[str, Any] | None = None
    numbers: tuple[str, ...] = ()
    done: threading.Event | None = None
    escalation_id: int | None = None
    error: BaseException | None = None
    stop: bool = False  # the writer ends after this batch (close)
    spooled: bool = False  # kept in the local spool, to be written once the database is back
    direct: dict[str, Any] | None = None  # alerts already sent straight through Twilio (from the spool)
    texts: tuple[tuple[str, str], ...] = ()  # (number, body) texts to a caller, written only with a new message
    record_id: int | None = field(default=None, repr=False)

    @property
    def urgent(self) -> bool:
        return self.done is not None

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, "sender": self.sender, "escalation": self.escalation,
                "numbers": list(self.numbers), "texts": [list(t) for t in self.texts]}


class _Link:
    """One connection a thread writes on, kept so that its statements stay prepared."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.conn, self.sqlite_full = engine, None, False

    def get(self):
        if self.conn is None:
            self.conn = self.engine.raw_connection()
        return self.conn

    def drop(self) -> None:
        conn, self.conn, self.sqlite_full = self.conn, None, False
        if conn is not None:
            with suppress(Exception):
                conn.invalidate()


class Recorder:
    """The one writer of inbound records, sender state, escalations and alerts in this process, and the
    keeper of what the database could not take (``spool``, written back by a drainer thread)."""

    def __init__(self, engine: Engine, read_engine: Engine, spool: Spool | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.engine, self.read_engine, self.spool, self.config = engine, read_engine, spool, config or {}
        self._read, self._statements = RawStatement(READ, engine.dialect), _statements(engine.dialect)
        self._unanswered = _unanswered_statement(engine.dialect)
        self._writer, self._drain_link = _Link(engine), _Link(engine)
        self._idle: list = []  # read connections not in use, for the next text on any thread
        self._idle_pid = os.getpid()
        self.watchdog, self.breaker = WATCHDOG, Breaker()
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._answered: dict[str, Outcome] = {}  # written soon; a retry meanwhile is answered from here
        self._states: dict[str, State] = {}  # the same for a sender's state: read your own writes
        self._opted_out_seen: set[str] = set()  # numbers already noted in the spool's opt-out copy
        self._lock = threading.Lock()
        self._spooling = threading.Lock()
        self._thread: threading.Thread | None = None
        self._drainer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._pid = 0
        atexit.register(self.flush)

    def close(self) -> None:
        """Write what is queued, stop the writer and drainer, close this recorder's connections."""
        atexit.unregister(self.flush)
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            stop = _Item(None, None, done=threading.Event(), stop=True)
            self._queue.put(stop)
            self._thread.join(timeout=10)
        self._stopping.set()
        if self._drainer is not None and self._drainer.is_alive():
            self._drainer.join(timeout=10)
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                conn.close()
        for link in (self._writer, self._drain_link):
            if link.conn is not None:
                with suppress(Exception):
                    link.conn.close()
            link.conn = None
        if self.spool is not None:
            self.spool.close()

    # -- what requests call ---------------------------------------------------------------------
    def read(self, phone: str, message_sid: str) -> _Row:
        """The sender's stored state and any stored answer to ``message_sid``, in one round trip, within
        READ_TIMEOUT. Connections are kept between texts (a checkout per text would cost more than the
        query) in a list any thread takes from, so a server that starts a thread per request (the
        development server) does not leave one behind each time."""
        if not self.breaker.allow():
            raise DatabaseAway("the database failed a moment ago")
        with self._lock:
            if self._idle_pid != os.getpid():  # a forked child: the parent's connections are not ours
                self._idle, self._idle_pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        while True:
            try:
                if conn is None:
                    conn = self.read_engine.raw_connection()
                row = self._guarded(conn, READ_TIMEOUT, self._read_row, conn, phone, message_sid)
                break
            except BaseException as exc:
                if conn is not None:
                    with suppress(Exception):
                        conn.invalidate()
                    conn = None
                # A kept connection that a restarted server dropped fails at once: one fresh try, so
                # that the moment after a restart is not taken for an outage.
                if reused and isinstance(exc, Exception) and unavailable(exc) and not isinstance(exc, TimeoutError):
                    reused = False
                    continue
                self.breaker.failure()
                raise
        self.breaker.success()
        with self._lock:
            if len(self._idle) < IDLE_READS:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()  # back to the pool
        return _Row(*row)

    def _read_row(self, conn, phone: str, message_sid: str):
        cur = conn.cursor()
        cur.execute(self._read.sql, self._read.params({"phone": phone, "sid": message_sid}))
        row = cur.fetchone()
        cur.close()
        return row

    def _guarded(self, conn, seconds: float, fn, *args):
        """``fn(*args)``, cut off after ``seconds`` by shutting ``conn`` under it."""
        fired: list[bool] = []

        def cut() -> None:
            fired.append(True)
            abort(conn)

        token = self.watchdog.arm(seconds, cut)
        try:
            return fn(*args)
        except Exception as exc:
            if fired:
                raise TimeoutError(f"the database did not answer within {seconds:.1f} s") from exc
            raise
        finally:
            self.watchdog.disarm(token)

    def ping(self, timeout: float = 1.5) -> None:
        """Raise unless the database answers ``SELECT 1`` within ``timeout`` (health checks)."""
        conn = self.read_engine.raw_connection()
        try:
            def select_one():
                cur = conn.cursor()
                cur.execute("SELECT 1")
                cur.fetchone()
                cur.close()
            self._guarded(conn, timeout, select_one)
        except BaseException:
            with suppress(Exception):
                conn.invalidate()
            raise
        conn.close()

    def record(self, message: dict[str, Any], sender: dict[str, Any] | None, outcome: Outcome,
               state: State | None, *, wait: bool = False, started: float | None = None,
               texts: tuple[tuple[str, str], ...] = ()) -> None:
        """Store ``message`` (and the sender's change, and ``texts`` for the outbox) soon; returns at once,
        or with ``wait`` (an opt-out) once it is committed or spooled. Raises if it is neither."""
        item = _Item(message, sender, state, done=threading.Event() if wait else None, texts=texts)
        self._put(item, outcome)
        if wait:
            self._wait(item, started)
            if item.error is not None:
                raise item.error

    def escalate(self, message: dict[str, Any], sender: dict[str, Any] | None, outcome: Outcome, state: State,
                 escalation: dict[str, Any], numbers: list[str], *, started: float | None = None) -> int | None:
        """Store the message, its escalation and one alert per on-call number in one transaction, and
        return once it is committed, with the escalation's id, or once it is spooled, with None. Raises
        :class:`Duplicate` for a message id stored already, and the error when it is neither written nor
        spooled."""
        item = _Item(message, sender, state, escalation, tuple(numbers), threading.Event())
        self._put(item, outcome)
        self._wait(item, started)
        if item.error is not None:
            raise item.error
        if item.spooled:
            return None
        if item.escalation_id is None:
            raise RuntimeError("escalation not written")
        return item.escalation_id

    def _wait(self, item: _Item, started: float | None = None) -> None:
        # ESCALATION_WAIT at most, less what the text has waited already (a slow read): within
        # ANSWER_BUDGET in all, and never less than half a second for a commit.
        left = ESCALATION_WAIT if started is None else ANSWER_BUDGET - (time.monotonic() - started)
        if item.done.wait(min(ESCALATION_WAIT, max(0.5, left))):
            return
        # The writer is held by a database that does not answer: this request keeps its record itself,
        # then cuts the writer's connection so that the writer moves on too.
        self._keep([item], TimeoutError(f"not committed within {ESCALATION_WAIT:.0f} s"))
        conn = self._writer.conn
        if conn is not None:
            with suppress(Exception):
                abort(conn)

    def answered(self, message_sid: str) -> Outcome | None:
        with self._lock:
            return self._answered.get(message_sid)

    def state(self, phone: str) -> State | None:
        """The sender's state if it is still waiting to be written."""
        with self._lock:
            return self._states.get(phone)

    def opted_out_locally(self, phone: str) -> bool | None:
        """What this machine last saw of the number's opt-out (for when the database cannot say)."""
        if self.spool is None:
            return None
        try:
            return self.spool.opted_out(phone)
        except Exception:
            log.exception("spool unreadable", extra={"event": "spool.error"})
            return None

    def note_opt_out(self, phone: str, opted_out: bool, at: datetime) -> None:
        if self.spool is None:
            return
        try:
            self.spool.note_opt_out(phone, opted_out, at)
            with self._lock:
                (self._opted_out_seen.add if opted_out else self._opted_out_seen.discard)(phone)
        except Exception:
            log.exception("spool unwritable", extra={"event": "spool.error"})

    def saw_opted_out(self, phone: str) -> None:
        """The database says ``phone`` opted out: keep that locally too, once per process."""
        if self.spool is not None and phone not in self._opted_out_seen:
            self.note_opt_out(phone, True, utcnow())

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything handed over so far, now, and wait for it (tests, shutdown). True if done."""
        if not self._queue.unfinished_tasks:
            return True
        self._ensure_thread()
        barrier = _Item(None, None, done=threading.Event())
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    def forget(self, phone: str) -> bool:
        """Forget ``phone``'s language, menus and opt-out (the simulator's "Start over"). Refused (False)
        for a number that has texted through Twilio: an opt-out a carrier knows of is never undone."""
        self.flush()
        with self.engine.begin() as conn:
            real = conn.execute(select(INBOUND.c.id).where(INBOUND.c.phone == phone,
                                                           ~INBOUND.c.message_sid.startswith(SIMULATED_SID))
                                .limit(1)).first()
            if real is not None:
                return False
            conn.execute(SENDERS.delete().where(SENDERS.c.phone == phone))
        with self._lock:
            self._states.pop(phone, None)
            self._opted_out_seen.discard(phone)
        if self.spool is not None:
            self.spool.forget_opt_out(phone)
        return True

    def _put(self, item: _Item, outcome: Outcome) -> None:
        with self._lock:
            self._answered[item.message["message_sid"]] = outcome
            if item.sender is not None and item.state is not None:
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
                    self._writer, self._drain_link = _Link(self.engine), _Link(self.engine)
                    self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
                    self._thread.start()
                    self._drainer = None
        if self._drainer is None and self.spool is not None and self.spool.exists():
            self._ensure_drainer()  # a spool left by a process that ended before it was written back

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._commit(batch)
            except Exception:  # never lose the writer thread
                log.exception("recorder failed", extra={"event": "db.error"})
            finally:
                with self._lock:
                    for item in batch:
                        if item.message is not None:
                            self._answered.pop(item.message["message_sid"], None)
                        if item.sender is not None and item.state is not None \
                                and self._states.get(item.sender["phone"]) is item.state:
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
        """Write ``batch`` in one transaction. If the database is away, keep it all in the spool; if it
        refused a row, each text on its own, so that one bad row cannot keep an escalation out."""
        items = [i for i in batch if i.message is not None and not i.spooled]
        if not items:
            return
        if not self.breaker.allow():
            self._keep(items, DatabaseAway("the database failed a moment ago"))
            return
        reused = self._writer.conn is not None
        for attempt in range(2):
            try:
                self._write(items, self._writer)
                self.breaker.success()
                return
            except Exception as exc:
                error = exc
            # The kept connection may only be stale (a restarted server): one fresh try.
            if attempt or not (reused and unavailable(error) and not isinstance(error, TimeoutError)):
                break
        if unavailable(error) or len(items) == 1:
            if unavailable(error):
                self.breaker.failure()
            self._keep(items, error)
            return
        for k, item in enumerate(items):
            try:
                self._write([item], self._writer)
            except Exception as exc:
                if unavailable(exc):
                    self.breaker.failure()
                    self._keep(items[k:], exc)
                    return
                self._keep([item], exc)

    def _keep(self, items: list[_Item], exc: BaseException) -> None:
        """Spool ``items`` (durably, before their requests answer) for the drainer to write back."""
        with self._spooling:
            items = [i for i in items if not i.spooled and i.escalation_id is None]
            if not items:
                return
            if self.spool is None:
                self._failed(items, exc)
                return
            try:
                self.spool.put([("text", i.message["message_sid"], i.payload()) for i in items])
            except Exception as spool_exc:
                log.exception("spool unwritable", extra={"event": "spool.error"})
                self._failed(items, spool_exc)
                return
            for item in items:
                item.spooled, item.error = True, None
        log.warning("database unavailable (%s): %d texts kept in the local spool", type(exc).__name__, len(items),
                    extra={"event": "spool.put", "escalations": sum(i.escalation is not None for i in items)})
        self._ensure_drainer()

    def _failed(self, items: list[_Item], exc: BaseException) -> None:
        log.error("could not record %d texts (%s)", len(items), type(exc).__name__,
                  exc_info=exc, extra={"event": "db.error"})
        for item in items:
            item.error = exc

    def _write(self, items: list[_Item], link: _Link) -> None:
        """One transaction for ``items``, cut off after WRITE_TIMEOUT."""
        try:
            conn = link.get()
            self._guarded(conn, WRITE_TIMEOUT, self._write_on, conn, link, items)
        except BaseException:
            for item in items:
                if item.escalation is not None:
                    item.escalation_id = None
            link.drop()  # a fresh connection next time: this one may be broken
            raise

    def _write_on(self, conn, link: _Link, items: list[_Item]) -> None:
        messages = list({i.message["message_sid"]: i.message for i in items}.values())
        for item in items:  # records from before the channel column (a spool, an older caller) are texts
            item.message.setdefault("channel", "sms")
            if item.escalation is not None:
                item.escalation.setdefault("channel", item.message["channel"])
        # A row without flags (an older caller) sets every field it carries.
        # A row spooled before reply_locale existed leaves it alone.
        senders = [{"set_locale": True, "set_menu": True, "set_more": True, "reply_locale": None,
                    "set_reply_locale": False, **i.sender}
                   for i in items if i.sender is not None]
        escalating = [i for i in items if i.escalation is not None]
        texting = {i.message["message_sid"]: i for i in items if i.texts}
        message, escalation, alert, sender, new_message = self._statements
        postgresql = self.engine.dialect.name == "postgresql"
        if not postgresql and link.sqlite_full != bool(escalating):
            # SQLite (WAL) syncs the disk at each commit only with synchronous=FULL: then a commit
            # survives a power cut too. That is paid for the commits that hold escalations.
            link.sqlite_full = bool(escalating)
            conn.cursor().execute(f"PRAGMA synchronous={'FULL' if escalating else 'NORMAL'}")
        reconcile: list[_Item] = []
        # PostgreSQL (which syncs every commit): statements go out without waiting for each other's
        # answers, so a transaction costs a round trip for each escalation's id and one to commit.
        with conn.driver_connection.pipeline() if postgresql else nullcontext():
            cur = conn.cursor()
            cur.executemany(message.sql, [message.params(m) for m in messages if m["message_sid"] not in texting])
            for item in texting.values():
                # Texts go out with a message seen for the first time only: a retried step sends none.
                cur.execute(new_message.sql, new_message.params(item.message))
                if cur.fetchone() is not None:
                    rows = caller_text_rows(item.texts)
                    cur.executemany(alert.sql, [alert.params(r) for r in rows])
            unanswered = [m["unanswered"] for m in messages if m.get("unanswered")]
            if unanswered:
                cur.executemany(self._unanswered.sql, [self._unanswered.params(u) for u in unanswered])
            for item in escalating:
                # The escalation of a message id stored already (by a retry answered elsewhere, or a
                # spooled record written twice) is there too: the unique message id says so, and
                # nothing is written twice.
                cur.execute(escalation.sql, escalation.params(item.escalation))
                row = cur.fetchone()
                if row is None:
                    item.error = Duplicate(item.message["message_sid"])
                    if item.direct and item.direct.get("sids"):
                        reconcile.append(item)
                    continue
                item.escalation_id, item.error = row[0], None
                rows = alert_rows(SimpleNamespace(id=row[0], **item.escalation), list(item.numbers),
                                  direct=item.direct)
                if rows:
                    cur.executemany(alert.sql, [alert.params(r) for r in rows])
            if senders:
                cur.executemany(sender.sql, [sender.params(r) for r in senders])
            cur.close()
        if reconcile:
            self._reconcile_direct(conn, reconcile)
        conn.commit()

    def _reconcile_direct(self, conn, items: list[_Item]) -> None:
        """Alerts sent directly for an escalation that reached the database after all (its commit went
        through as the connection was cut): its pending outbox rows are marked sent, not sent again."""
        postgresql = self.engine.dialect.name == "postgresql"
        mark = "%s" if postgresql else "?"
        now = utcnow() if postgresql else f"{utcnow():%Y-%m-%d %H:%M:%S.%f}"
        cur = conn.cursor()
        for item in items:
            for number, sid in item.direct["sids"].items():
                cur.execute(f"UPDATE alert_outbox SET status = 'sent', twilio_sid = {mark}, sent_at = {mark} "
                            f"WHERE to_number = {mark} AND status = 'pending' AND escalation_id = "
                            f"(SELECT id FROM escalations WHERE message_sid = {mark})",
                            (sid, now, number, item.message["message_sid"]))
        cur.close()

    # -- the drainer ----------------------------------------------------------------------------
    def keep_status(self, sid: str, status: str, error_code: str | None) -> None:
        """Spool a status callback the database could not take (Twilio does not send it again)."""
        if self.spool is None:
            raise RuntimeError("no spool")
        self.spool.put([("status", f"{sid}:{status}", {"sid": sid, "status": status, "error_code": error_code})])
        self._ensure_drainer()

    def _ensure_drainer(self) -> None:
        if self.spool is None or self._stopping.is_set():
            return
        with self._lock:
            if self._drainer is None or not self._drainer.is_alive():
                self._drainer = threading.Thread(target=self._drain_loop, name="spool-drainer", daemon=True)
                self._drainer.start()

    def _drain_loop(self) -> None:
        while not self._stopping.wait(DRAIN_INTERVAL):
            try:
                self.drain()
            except Exception:
                log.exception("spool drain failed", extra={"event": "spool.error"})

    def drain(self) -> int:
        """Write spooled records back into the database, idempotently; while it is away, alert on-call
        staff directly for escalations spooled DIRECT_ALERT_AFTER ago. Returns how many records are left."""
        if self.spool is None or not self.spool.exists():
            return 0
        records = self.spool.claim(limit=200, hold=60.0)
        away: BaseException | None = None
        written = 0
        for record in records:
            if away is not None:
                self.spool.release(record.id)
                continue
            try:
                self._restore(record)
                self.spool.delete(record.id)
                written += 1
            except Exception as exc:
                if unavailable(exc):
                    away = exc
                    self.spool.release(record.id)
                else:
                    log.error("spooled record refused by the database (%s); tried again later", type(exc).__name__,
                              exc_info=exc, extra={"event": "spool.refused", "kind": record.kind})
                    self.spool.release(record.id, failed=True, retry_in=min(300.0, 5.0 * 2 ** record.attempts))
        if written:
            self.breaker.success()
            log.warning("database back: %d spooled records written", written, extra={"event": "spool.drained"})
        if away is not None:
            self._alert_directly()
        return self.spool.count()

    def _restore(self, record) -> None:
        if record.kind == "status":
            from sqlalchemy.orm import Session

            p = record.payload
            with Session(self.engine) as session:
                record_status(session, p["sid"], p["status"], p.get("error_code"), self.config)
            return
        p = record.payload
        item = _Item(p["message"], p.get("sender"), None, p.get("escalation"), tuple(p.get("numbers") or ()),
                     direct=record.direct, texts=tuple(tuple(t) for t in p.get("texts") or ()))
        self._write([item], self._drain_link)

    def _alert_directly(self) -> None:
        """Send the alerts of escalations that have waited in the spool too long, through Twilio, once:
        the spool records which were sent, and writing the record back marks them sent in the outbox."""
        if not (self.config.get("TWILIO_ACCOUNT_SID") and self.config.get("TWILIO_AUTH_TOKEN")):
            return
        for record in self.spool.awaiting_direct(DIRECT_ALERT_AFTER):
            if not self.spool.claim_direct(record.id):
                continue
            escalation = record.payload["escalation"]
            body = alert_body(SimpleNamespace(id=None, **escalation))
            sids: dict[str, str] = {}
            errors: dict[str, str] = {}
            for number in record.payload["numbers"]:
                try:
                    sids[number] = send_direct(self.config, number, body)
                except Exception as exc:
                    errors[number] = f"{type(exc).__name__}: {exc}"
            self.spool.set_direct(record.id, {"state": "sent", "sids": sids, "errors": errors, "body": body})
            log.warning("escalation alerted directly while the database is away", extra={
                "event": "alert.direct", "sent": len(sids), "failed": len(errors),
                "phone": mask_phone(escalation.get("phone"))})


MESSAGE_COLUMNS = ("message_sid", "phone", "num_media", "level", "topic", "locale", "reply", "received_at",
                   "channel")
SENDER_COLUMNS = ("phone", "locale", "locale_explicit", "menu", "more", "opted_out", "updated_at", "created_at",
                  "opted_out_at", "opted_in_at", "reply_locale")
ESCALATION_COLUMNS = ("level", "locale", "topic", "rules", "phone", "text", "message_sid", "created_at", "channel")
ALERT_COLUMNS = ("escalation_id", "to_number", "body", "status", "attempts", "next_attempt_at", "created_at",
                 "twilio_sid", "sent_at")


def _unanswered_statement(dialect) -> RawStatement:
    insert = sqlite_insert if dialect.name == "sqlite" else pg_insert
    table = UnansweredText.__table__
    columns = ("message_sid", "phone", "locale", "kind", "text", "received_at")
    statement = (insert(table).values({c: bindparam(c) for c in columns})
                 .on_conflict_do_nothing(index_elements=[table.c.message_sid]))
    return RawStatement(statement, dialect)


def caller_text_rows(texts: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Outbox rows for texts to a caller (no escalation): sent by the alert worker like any other."""
    now = utcnow()
    return [{"escalation_id": None, "to_number": to, "body": body, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now, "twilio_sid": None, "sent_at": None} for to, body in texts]


def _statements(dialect) -> tuple[RawStatement, RawStatement, RawStatement, RawStatement, RawStatement]:
    """The writes: a message once, an escalation once per message (returning its id), an alert, the
    fields of the sender's state a text changed (insert or update), and a message once returning its id
    (None if it was stored already), compiled for the dialect."""
    insert = sqlite_insert if dialect.name == "sqlite" else pg_insert

    def values(table, columns):
        return insert(table).values({c: bindparam(c) for c in columns})

    message = values(INBOUND, MESSAGE_COLUMNS).on_conflict_do_nothing(index_elements=[INBOUND.c.message_sid])
    escalation = (values(ESCALATIONS, ESCALATION_COLUMNS)
                  .on_conflict_do_nothing(index_elements=[ESCALATIONS.c.message_sid]).returning(ESCALATIONS.c.id))
    sender = values(SENDERS, SENDER_COLUMNS)
    new, old = sender.excluded, SENDERS.c

    def changed(flag: str, column: str):
        return case((bindparam(flag, type_=Boolean), new[column]), else_=old[column])

    # Times decide between an opt-out and an opt-in, whatever order their writes arrive in (two
    # workers, a spool written back late); any other text leaves opted_out alone.
    opts_out = and_(new.opted_out_at.is_not(None), or_(old.opted_in_at.is_(None), new.opted_out_at >= old.opted_in_at))
    opts_in = and_(new.opted_in_at.is_not(None), or_(old.opted_out_at.is_(None), new.opted_in_at > old.opted_out_at))

    def latest(column: str):
        return case((and_(new[column].is_not(None), or_(old[column].is_(None), new[column] > old[column])),
                     new[column]), else_=old[column])

    updates: dict[str, Any] = {
        "locale": changed("set_locale", "locale"), "locale_explicit": changed("set_locale", "locale_explicit"),
        "menu": changed("set_menu", "menu"), "more": changed("set_more", "more"),
        "reply_locale": changed("set_reply_locale", "reply_locale"),
        "opted_out": case((opts_out, true()), (opts_in, false()), else_=old.opted_out),
        "opted_out_at": latest("opted_out_at"), "opted_in_at": latest("opted_in_at"),
        "updated_at": new.updated_at,
    }
    upsert = sender.on_conflict_do_update(index_elements=[SENDERS.c.phone], set_=updates)
    return (RawStatement(message, dialect), RawStatement(escalation, dialect),
            RawStatement(ALERTS.insert().values({c: bindparam(c) for c in ALERT_COLUMNS}), dialect),
            RawStatement(upsert, dialect), RawStatement(message.returning(INBOUND.c.id), dialect))


@dataclass(frozen=True)
class _Row:
    locale: str | None
    locale_explicit: bool | None
    menu: str | None
    more: str | None
    opted_out: bool | None
    reply_locale: str | None
    seen_sid: str | None
    seen_reply: str | None
    seen_level: str | None
    seen_topic: str | None
    seen_locale: str | None

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.seen_reply, self.seen_level, self.seen_topic, self.seen_locale, True)


def spool_path(app: Flask) -> str:
    """SPOOL_PATH, else beside a SQLite database, else in the instance folder (one per database URL)."""
    if app.config.get("SPOOL_PATH"):
        return str(app.config["SPOOL_PATH"])
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return url.removeprefix("sqlite:///") + ".spool"
    return os.path.join(app.instance_path, f"spool-{hashlib.sha1(url.encode()).hexdigest()[:10]}.db")


def init_app(app: Flask) -> None:
    app.extensions["recorder"] = Recorder(app.extensions["engine"], app.extensions["read_engine"],
                                          Spool(spool_path(app)), app.config)
