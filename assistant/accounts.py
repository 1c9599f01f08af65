"""Coordinators' accounts: users and roles, passwords, sessions, the limit on sign-in attempts, the audit log.

Roles: ``admin`` (everything, and users), ``coordinator`` (publish, rollback, escalations, unanswered
texts), ``reviewer`` (marks translations reviewed, only in their own languages). Passwords are hashed with
werkzeug's scrypt. A session is a signed cookie holding the user's id and session version; signing out
raises the version, so a copied cookie stops working too.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

import click
from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask.cli import AppGroup
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .db import get_session
from .models import AuditEntry, SignInFailure, User, utcnow

log = logging.getLogger(__name__)

ROLES = ("admin", "coordinator", "reviewer")
CAN = {  # what each role may do on the page
    "admin": {"view", "users", "publish", "escalations", "review", "audit"},
    "coordinator": {"view", "publish", "escalations", "review"},
    "reviewer": {"view", "review"},
}
MAX_FAILURES_ACCOUNT = 5  # failed sign-ins per account ...
MAX_FAILURES_ADDRESS = 20  # ... and per address ...
FAILURE_WINDOW = timedelta(minutes=15)  # ... within this long
MIN_PASSWORD = 12


class AccountError(ValueError):
    """A request about an account that cannot be done, said plainly."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user, as the pages need them."""

    id: int
    email: str
    role: str
    locales: tuple[str, ...]

    def can(self, what: str) -> bool:
        return what in CAN.get(self.role, set())

    def reviews(self, locale: str) -> bool:
        """A reviewer reviews only their own languages; admins and coordinators any."""
        return self.can("review") and (self.role != "reviewer" or locale in self.locales)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD") or "scrypt")


def create_user(db: Session, email: str, password: str, role: str, locales: list[str] | None = None) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccountError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    known = current_app.extensions["assistant"].store.current.languages
    unknown = [loc for loc in locales or [] if loc not in known]
    if unknown:
        raise AccountError(f"unknown language(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if role == "reviewer" and not locales:
        raise AccountError("a reviewer needs --locales (the languages they review)")
    if db.scalar(select(User).where(User.email == email)) is not None:
        raise AccountError(f"{email} has an account already")
    user = User(email=email, password_hash=hash_password(password), role=role, locales=",".join(locales or []))
    db.add(user)
    db.flush()
    audit(db, "system", "user.create", email, f"role {role}" + (f", languages {user.locales}" if user.locales else ""))
    return user


def audit(db: Session, actor: str, action: str, target: str = "", detail: str = "") -> None:
    """One line of the audit log, in the caller's transaction (it commits with what it records)."""
    db.add(AuditEntry(actor=actor, action=action, target=target[:255], detail=detail))


# -- the limit on sign-in attempts ----------------------------------------------------------------------------

class Throttle:
    """Failed sign-ins counted per key (an account, an address) over FAILURE_WINDOW: in Redis when
    REDIS_URL is set (every worker sees the same counts), else in the database."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def failures(self, db: Session, key: str) -> int:
        if self.redis is not None:
            try:
                return int(self.redis.get(f"signin:{key}") or 0)
            except Exception:
                log.exception("Redis unavailable: sign-in failures counted in the database")
        since = utcnow() - FAILURE_WINDOW
        return db.scalar(select(func.count()).select_from(SignInFailure)
                         .where(SignInFailure.key == key, SignInFailure.at >= since)) or 0

    def fail(self, db: Session, key: str) -> None:
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline()
                pipe.incr(f"signin:{key}")
                pipe.expire(f"signin:{key}", int(FAILURE_WINDOW.total_seconds()), nx=True)
                pipe.execute()
                return
            except Exception:
                log.exception("Redis unavailable: sign-in failure kept in the database")
        db.add(SignInFailure(key=key))
        # Old rows are of no use to the limit: they go as new ones come.
        db.execute(delete(SignInFailure).where(SignInFailure.at < utcnow() - FAILURE_WINDOW))

    def clear(self, db: Session, key: str) -> None:
        if self.redis is not None:
            try:
                self.redis.delete(f"signin:{key}")
                return
            except Exception:
                log.exception("Redis unavailable")
        db.execute(delete(SignInFailure).where(SignInFailure.key == key))


def sign_in(db: Session, email: str, password: str, address: str) -> tuple[User | None, str]:
    """The user, or None and what to tell them. Too many failures for the account or the address lock it
    for FAILURE_WINDOW, and the message says so (the same for a known or an unknown account)."""
    throttle: Throttle = current_app.extensions["throttle"]
    email = email.strip().lower()[:254]
    keys = (f"account:{email}", f"address:{address}")
    if (throttle.failures(db, keys[0]) >= MAX_FAILURES_ACCOUNT
            or throttle.failures(db, keys[1]) >= MAX_FAILURES_ADDRESS):
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        return None, f"Too many failed sign-ins. Wait {minutes} minutes, or ask an admin to check your account."
    user = db.scalar(select(User).where(User.email == email))
    if user is None or not user.active or not check_password_hash(user.password_hash, password):
        for key in keys:
            throttle.fail(db, key)
        db.commit()
        log.warning("sign-in failed", extra={"event": "admin.signin.failed"})
        return None, "Wrong email or password."
    throttle.clear(db, keys[0])
    user.last_sign_in_at = utcnow()
    db.commit()
    return user, ""


def start_session(user: User) -> None:
    session.clear()
    session["uid"], session["v"] = user.id, user.session_version
    session.permanent = True


def end_session(db: Session) -> None:
    viewer = current_viewer()
    if viewer is not None:
        user = db.get(User, viewer.id)
        if user is not None:
            user.session_version += 1
            db.commit()
    session.clear()


def current_viewer() -> Viewer | None:
    if "viewer" in g:
        return g.viewer
    viewer = None
    uid, version = session.get("uid"), session.get("v")
    if uid is not None:
        try:
            user = get_session().get(User, uid)
        except Exception:
            log.exception("cannot read the signed-in user")
            user = None
        if user is not None and user.active and user.session_version == version:
            viewer = Viewer(user.id, user.email, user.role, tuple(x for x in user.locales.split(",") if x))
    g.viewer = viewer
    return viewer


def requires(what: str) -> Callable:
    """The view needs a session (else the sign-in page) whose role may do ``what`` (else 403)."""

    def decorator(view):
        @wraps(view)
        def checked(*args, **kwargs):
            viewer = current_viewer()
            if viewer is None:
                return redirect(url_for("admin.sign_in", next=request.path))
            if not viewer.can(what):
                abort(403)
            return view(*args, **kwargs)

        return checked

    return decorator


# -- settings ------------------------------------------------------------------------------------------------

def secret_key(app: Flask) -> str:
    """SECRET_KEY, else (outside production) one kept in the instance folder, so sessions outlive a restart."""
    if app.config.get("SECRET_KEY"):
        return str(app.config["SECRET_KEY"])
    path = Path(app.instance_path) / "secret_key"
    try:
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        path.write_text(key)
        path.chmod(0o600)
        return key
    except OSError:
        return secrets.token_hex(32)  # a read-only disk: sessions last as long as the process


# -- the command line ----------------------------------------------------------------------------------------

admin_cli = AppGroup("admin", help="Accounts for the coordinators' web page (/admin).")


@admin_cli.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--locales", default="", help="A reviewer's languages, comma-separated (es,fr).")
def create_user_command(email: str, role: str, locales: str) -> None:
    """Create an account. The password is asked for at a prompt, or read as one line from standard input
    when that is not a terminal."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    db = get_session()
    try:
        user = create_user(db, email, password, role, [x.strip() for x in locales.split(",") if x.strip()])
        db.commit()
    except AccountError as exc:
        db.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.email} ({user.role})")


def init_app(app: Flask) -> None:
    app.secret_key = secret_key(app)
    production = app.config.get("ASSISTANT_ENV") == "production"
    # Flask's defaults are a plain-http cookie without SameSite, kept 31 days.
    app.config.update(SESSION_COOKIE_SECURE=production, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=timedelta(hours=12))
    app.extensions["throttle"] = Throttle(app.config.get("REDIS_URL") or None)
    from .retention import purge_command

    admin_cli.add_command(purge_command)
    app.cli.add_command(admin_cli)


__all__: list[Any] = ["ROLES", "AccountError", "Viewer", "audit", "create_user", "current_viewer", "requires",
                      "sign_in"]
