"""A durable local spool for what the database could not take, and the guards that keep a slow or
absent database from holding a caregiver's answer.

The spool is a SQLite file beside the app (``instance/`` by default, ``SPOOL_PATH`` to choose), written
with ``synchronous=FULL``: once :meth:`Spool.put` returns, the record survives a crash of the process and
a power cut. Every process on the machine shares it; records are keyed (a message's sid, a status
callback's sid and state), so one thing spooled twice is kept once, and writing a record back into the
database is idempotent (see ``inbox.Recorder.drain``). It also keeps a local copy of the opt-outs this
machine has seen, for deciding what to answer while the database cannot be read.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,           -- 'text' (a message with its sender change, escalation, alerts) or 'status'
    key TEXT NOT NULL,
    payload TEXT NOT NULL,        -- JSON
    created REAL NOT NULL,        -- time.time() when spooled
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until REAL,           -- a drainer is writing it back until then
    direct TEXT,                  -- JSON: alerts sent straight through Twilio while the database was away
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS optouts (
    phone TEXT PRIMARY KEY,
    opted_out INTEGER NOT NULL,
    at TEXT NOT NULL
);
"""


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    raise TypeError(type(value).__name__)


def _decode(obj: dict[str, Any]) -> Any:
    if set(obj) == {"__datetime__"}:
        return datetime.fromisoformat(obj["__datetime__"])
    return obj


def dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, ensure_ascii=False)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


@dataclass
class Record:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    created: float
    attempts: int
    direct: dict[str, Any] | None


class Spool:
    """Append, claim, delete: records waiting for the database, in one SQLite file per machine."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a record that is spooled is on disk
            conn.executescript(SCHEMA)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def exists(self) -> bool:
        return self.path.exists()

    def put(self, records: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Keep ``(kind, key, payload)`` records, durably, in one transaction. A key kept already stays as is."""
        if not records:
            return
        db = self._db()
        now = time.time()
        with _transaction(db):
            db.executemany("INSERT OR IGNORE INTO records (kind, key, payload, created) VALUES (?, ?, ?, ?)",
                           [(kind, key, dumps(payload), now) for kind, key, payload in records])

    def count(self) -> int:
        if not self.exists():
            return 0
        return self._db().execute("SELECT count(*) FROM records").fetchone()[0]

    def claim(self, limit: int = 100, hold: float = 30.0) -> list[Record]:
        """Up to ``limit`` records no other drainer holds, oldest first, held for ``hold`` seconds."""
        db, now = self._db(), time.time()
        with _transaction(db):
            rows = db.execute("SELECT id, kind, key, payload, created, attempts, direct FROM records "
                              "WHERE claimed_until IS NULL OR claimed_until < ? ORDER BY id LIMIT ?",
                              (now, limit)).fetchall()
            db.executemany("UPDATE records SET claimed_until = ? WHERE id = ?", [(now + hold, r[0]) for r in rows])
        return [Record(r[0], r[1], r[2], loads(r[3]), r[4], r[5], loads(r[6]) if r[6] else None) for r in rows]

    def delete(self, record_id: int) -> None:
        self._db().execute("DELETE FROM records WHERE id = ?", (record_id,))

    def release(self, record_id: int, *, failed: bool = False, retry_in: float = 0.0) -> None:
        """Give a claimed record back; ``failed`` counts an attempt the database refused for the row itself."""
        self._db().execute("UPDATE records SET claimed_until = ?, attempts = attempts + ? WHERE id = ?",
                           (time.time() + retry_in if retry_in else None, int(failed), record_id))

    def claim_direct(self, record_id: int, hold: float = 60.0) -> bool:
        """Take the right to alert directly for this record: once, whichever process asks first, and
        not while a drainer holds it (it may be writing it into the database right now). Held like a
        drainer's claim, so no drainer writes it back half-sent; a sender that dies leaves ``sending``,
        which the outbox looks up at Twilio before sending again."""
        now = time.time()
        cur = self._db().execute(
            "UPDATE records SET direct = ?, claimed_until = ? WHERE id = ? AND direct IS NULL "
            "AND (claimed_until IS NULL OR claimed_until < ?)",
            (dumps({"state": "sending", "sids": {}, "at": now}), now + hold, record_id, now))
        return cur.rowcount == 1

    def set_direct(self, record_id: int, direct: dict[str, Any]) -> None:
        """Record what was sent directly and give the record back to the drainers."""
        self._db().execute("UPDATE records SET direct = ?, claimed_until = NULL WHERE id = ?",
                           (dumps(direct), record_id))

    def awaiting_direct(self, older_than: float) -> list[Record]:
        """Escalations spooled more than ``older_than`` seconds ago whose alerts nobody has sent."""
        if not self.exists():
            return []
        now = time.time()
        rows = self._db().execute(
            "SELECT id, kind, key, payload, created, attempts, direct FROM records WHERE kind = 'text' "
            "AND direct IS NULL AND created < ? AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id",
            (now - older_than, now)).fetchall()
        records = [Record(r[0], r[1], r[2], loads(r[3]), r[4], r[5], None) for r in rows]
        return [r for r in records if r.payload.get("escalation") and r.payload.get("numbers")]

    # -- the local copy of opt-outs ------------------------------------------------------------------
    def note_opt_out(self, phone: str, opted_out: bool, at: datetime) -> None:
        self._db().execute("INSERT INTO optouts (phone, opted_out, at) VALUES (?, ?, ?) ON CONFLICT (phone) "
                           "DO UPDATE SET opted_out = excluded.opted_out, at = excluded.at WHERE excluded.at >= at",
                           (phone, int(opted_out), at.isoformat()))

    def opted_out(self, phone: str) -> bool | None:
        """What this machine last saw of ``phone``'s opt-out: True, False, or None (nothing seen)."""
        if not self.exists():
            return None
        row = self._db().execute("SELECT opted_out FROM optouts WHERE phone = ?", (phone,)).fetchone()
        return None if row is None else bool(row[0])

    def forget_opt_out(self, phone: str) -> None:
        if self.exists():
            self._db().execute("DELETE FROM optouts WHERE phone = ?", (phone,))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local = threading.local()


class _transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_exc) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


class Watchdog:
    """Runs a callback when a deadline passes, unless disarmed first: one thread per process for every
    read and write that must not wait on the database longer than a caregiver can wait for an answer."""

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid, self._armed = os.getpid(), {}
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            self._next += 1
            self._armed[self._next] = (time.monotonic() + seconds, callback)
            return self._next

    def disarm(self, token: int) -> None:
        with self._lock:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                due = [t for t, (deadline, _cb) in self._armed.items() if deadline <= now]
                callbacks = [self._armed.pop(t)[1] for t in due]
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # the connection is gone already: nothing left to abort
                    log.debug("watchdog callback failed", exc_info=True)


def abort(conn: Any) -> None:
    """Make whatever waits on this pooled DBAPI connection fail now. PostgreSQL: its socket is shut, so a
    server that accepts and never answers cannot hold the thread (a statement timeout is the server's
    own and cannot help when the server is unreachable). SQLite: the statement is interrupted."""
    driver = getattr(conn, "driver_connection", conn)
    if isinstance(driver, sqlite3.Connection):
        driver.interrupt()
        return
    fd = driver.pgconn.socket
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()


class Breaker:
    """After the database failed, skip it for ``pause`` seconds (one request at a time probes it), so that
    during an outage each text does not pay a timeout before its answer."""

    def __init__(self, pause: float = 1.0) -> None:
        self.pause = pause
        self._open_until = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if not self._open_until:
            return True
        with self._lock:
            if time.monotonic() < self._open_until or self._probing:
                return False
            self._probing = True  # this caller probes; the others still skip
            return True

    def success(self) -> None:
        if self._open_until or self._probing:
            with self._lock:
                self._open_until, self._probing = 0.0, False

    def failure(self) -> None:
        with self._lock:
            self._open_until, self._probing = time.monotonic() + self.pause, False

    @property
    def open(self) -> bool:
        return bool(self._open_until)


def unavailable(exc: BaseException) -> bool:
    """Is this the database being away (refused, stalled, timed out), rather than a row it refused?"""
    import psycopg
    from sqlalchemy import exc as sa_exc

    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        if isinstance(seen, (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError,
                             sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError,
                             TimeoutError, DatabaseAway)):
            # psycopg's DataError is not an OperationalError; its QueryCanceled (statement timeout) is.
            return not isinstance(seen, psycopg.DataError)
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


class DatabaseAway(RuntimeError):
    """The database failed a moment ago; it is not tried again yet."""
