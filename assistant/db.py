"""Database engine, sessions and migrations (SQLite by default, PostgreSQL through DATABASE_URL)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app, g
from flask.cli import AppGroup
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept the URLs hosting platforms give (postgres://...) and use psycopg 3 for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# Nothing may wait on the database longer than a caregiver's answer can: libpq's own limits (the
# inbox's watchdog also cuts a connection whose server accepts and never answers, which none of these
# can see on its own: keepalives and tcp_user_timeout notice a dead network, not a silent server).
CONNECT_TIMEOUT = 2  # seconds (libpq's least)
READ_STATEMENT_TIMEOUT_MS = 1500
WRITE_STATEMENT_TIMEOUT_MS = 5000
SQLITE_BUSY_TIMEOUT = 3.0  # seconds a write waits for another process's; then it is spooled


def pg_connect_args(statement_timeout_ms: int) -> dict[str, object]:
    return {"connect_timeout": CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={statement_timeout_ms} -c idle_in_transaction_session_timeout=30000",
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2,
            "tcp_user_timeout": 5000}


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """The engine for ``url``; ``autocommit`` for single reads (no BEGIN/ROLLBACK round trips)."""
    url = normalise_url(url)
    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
                               **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL lets readers and one writer work together
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # commits survive a crash of the app; see Recorder
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # No pre-ping (it doubles the round trips of every request); connections are recycled instead, and a
    # dropped connection only fails that request, which still answers the caregiver (see inbox.py). A
    # server that does not answer fails a connection within seconds, not after Twilio has given up.
    timeout = READ_STATEMENT_TIMEOUT_MS if autocommit else WRITE_STATEMENT_TIMEOUT_MS
    return create_engine(url, pool_size=10, max_overflow=20, pool_recycle=300, pool_timeout=2,
                         connect_args=pg_connect_args(timeout), **options)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to date; running it again changes nothing."""
    command.upgrade(alembic_config(url), revision)


def get_session() -> Session:
    """The request's session, closed when the request ends."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["sessionmaker"]()
    return g.db_session


def _close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade_command(revision: str) -> None:
    """Create or migrate the schema. Safe to run twice."""
    upgrade(current_app.config["DATABASE_URL"], revision)
    for handler in logging.getLogger().handlers:  # the migrations' log lines first, then the verdict
        handler.flush()
    click.echo("database is up to date")


def init_app(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///") and ":memory:" not in url:  # instance/ on a fresh clone
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    app.extensions["engine"] = engine
    app.extensions["read_engine"] = make_engine(url, autocommit=True)
    app.extensions["sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)
    app.cli.add_command(db_cli)
