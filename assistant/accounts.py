"""Coordinators' accounts: users and roles, passwords, sessions, the limit on sign-in attempts, the audit log.

Roles: ``admin`` (everything, and users), ``coordinator`` (publish, rollback, escalations, unanswered
texts), ``reviewer`` (marks translations reviewed, only in their own languages). Passwords are hashed with
werkzeug's scrypt. A session is a signed cookie holding the user's id and session version; signing out
raises the version, so a copied cookie stops working too. An admin changes an account (role, languages,
password, deactivate, reactivate, unlock) here or with ``assistant admin``: each change is audited, and each
one that changes what the user may do or how they sign in raises the version too, so their sessions end.
"""

from __future__ import annotations

import getpass
import logging
import re
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
MAX_PASSWORD = 1000
# The address syntax browsers check in <input type=email> (WHATWG), ASCII only, and a domain with a dot: no
# angle brackets, double quotes, spaces or markup in an address that is shown on every page and in the audit log.
EMAIL = re.compile(r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                   r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


class AccountError(ValueError):
    """A request about an account that cannot be done, said plainly."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user, as the pages need them."""

    id: int
    email: str
    role: str
    locales: tuple[str, ...]
    must_change_password: bool = False

    def can(self, what: str) -> bool:
        return what in CAN.get(self.role, set())

    def reviews(self, locale: str) -> bool:
        """A reviewer reviews only their own languages; admins and coordinators any."""
        return self.can("review") and (self.role != "reviewer" or locale in self.locales)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD") or "scrypt")


_DUMMY_HASHES: dict[str, str] = {}


def _dummy_hash() -> str:
    """A hash of a random password, made the way real ones are: checked when there is no account (or it is
    deactivated), so that a wrong password costs the same time whether the account exists or not."""
    method = current_app.config.get("PASSWORD_HASH_METHOD") or "scrypt"
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return _DUMMY_HASHES[method]


def normal_email(email: str) -> str:
    """``email`` trimmed and lower-cased, or :class:`AccountError` when it is not an address."""
    email = (email or "").strip().lower()
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise AccountError(f"{email[:80]!r} is not an email address")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")


def _check_role(role: str, locales: list[str] | None) -> list[str]:
    """The languages to store for ``role``: a reviewer's own; admins and coordinators review every language."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    locales = list(dict.fromkeys(loc for loc in locales or [] if loc))
    known = current_app.extensions["assistant"].store.current.languages
    unknown = [loc for loc in locales if loc not in known]
    if unknown:
        raise AccountError(f"unknown language(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if role != "reviewer":
        return []
    if not locales:
        raise AccountError("a reviewer needs the languages they review (tick them; --locales es,fr in a command)")
    return locales


def create_user(db: Session, email: str, password: str, role: str, locales: list[str] | None = None, *,
                by: str = "") -> User:
    email = normal_email(email)
    locales = _check_role(role, locales)
    _check_password(password)
    existing = db.scalar(select(User).where(User.email == email))
    if existing is not None:
        raise AccountError(f"{email} has an account already" + ("" if existing.active else
                           " (deactivated: reactivate it on the Users page or with `assistant admin activate`)"))
    user = User(email=email, password_hash=hash_password(password), role=role, locales=",".join(locales))
    db.add(user)
    db.flush()
    audit(db, by or command_line_actor(), "user.create", email,
          f"role {role}" + (f", languages {user.locales}" if user.locales else ""))
    return user


def command_line_actor() -> str:
    """Who the audit log names for ``assistant admin`` commands: the server account that ran them."""
    try:
        return f"command line ({getpass.getuser()})"
    except Exception:  # no user name in this environment
        return "command line"


def find_user(db: Session, email: str) -> User:
    user = db.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        raise AccountError(f"there is no account {email.strip()[:80]!r}")
    return user


def _end_sessions(user: User) -> None:
    """Every session of ``user`` ends (their cookies name the old version)."""
    user.session_version = (user.session_version or 0) + 1


def _other_active_admins(db: Session, user: User) -> int:
    return db.scalar(select(func.count()).select_from(User)
                     .where(User.role == "admin", User.active.is_(True), User.id != user.id)) or 0


def set_role(db: Session, user: User, role: str, locales: list[str] | None, *, by: str) -> bool:
    """Change ``user``'s role and languages; False when both are what they were already."""
    new_locales = ",".join(_check_role(role, locales))
    if (role, new_locales) == (user.role, user.locales):
        return False
    if user.role == "admin" and role != "admin" and user.active and not _other_active_admins(db, user):
        raise AccountError(f"{user.email} is the last active admin: make someone else an admin first")
    before = f"{user.role}" + (f" ({user.locales})" if user.locales else "")
    after = f"{role}" + (f" ({new_locales})" if new_locales else "")
    user.role, user.locales = role, new_locales
    _end_sessions(user)
    audit(db, by, "user.role", user.email, f"{before} -> {after}")
    return True


def set_active(db: Session, user: User, active: bool, *, by: str) -> bool:
    """Deactivate (they cannot sign in; their sessions end) or reactivate ``user``; False when it already was."""
    if user.active == active:
        return False
    if not active and user.role == "admin" and not _other_active_admins(db, user):
        raise AccountError(f"{user.email} is the last active admin: make someone else an admin first")
    user.active = active
    _end_sessions(user)
    audit(db, by, "user.reactivate" if active else "user.deactivate", user.email)
    return True


def set_password(db: Session, user: User, password: str, *, by: str) -> None:
    """An admin (or the command line) sets ``user``'s password: their sessions end, and since someone else knows
    it, they choose their own at their next sign-in."""
    _check_password(password)
    user.password_hash = hash_password(password)
    user.must_change_password = True
    _end_sessions(user)
    audit(db, by, "user.password", user.email, "set by an admin; to be changed at the next sign-in")


def change_own_password(db: Session, user: User, current: str, new: str) -> None:
    """The signed-in user changes their own password: the current one first. Their other sessions end."""
    if not check_password_hash(user.password_hash, current[:MAX_PASSWORD]):
        raise AccountError("the current password is not right")
    _check_password(new)
    if new == current:
        raise AccountError("choose a password other than the current one")
    user.password_hash = hash_password(new)
    user.must_change_password = False
    _end_sessions(user)
    audit(db, user.email, "user.password", user.email, "changed by themselves")


def failed_sign_ins(db: Session, user: User) -> int:
    """Failed sign-ins counted against ``user``'s account now (MAX_FAILURES_ACCOUNT or more: locked)."""
    throttle: Throttle = current_app.extensions["throttle"]
    return throttle.failures(db, f"account:{user.email}")


def unlock(db: Session, user: User, *, by: str, address: str = "") -> None:
    """Forget the failed sign-ins of ``user``'s account (and of ``address``, when given): they may try again."""
    throttle: Throttle = current_app.extensions["throttle"]
    throttle.clear(db, f"account:{user.email}")
    if address:
        throttle.clear(db, f"address:{address}")
    audit(db, by, "user.unlock", user.email, "and one address" if address else "")


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
    # The hash is always checked, against a dummy when there is no such account: the answer then takes as long
    # for an address that has no account as for a wrong password, and does not tell which addresses have one.
    right = check_password_hash(user.password_hash if user is not None else _dummy_hash(), password)
    if user is None or not user.active or not right:
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
            viewer = Viewer(user.id, user.email, user.role, tuple(x for x in user.locales.split(",") if x),
                            bool(user.must_change_password))
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
            if viewer.must_change_password and what != "account":
                # An admin set this password: nothing else until the user has chosen their own.
                return redirect(url_for("admin.account"))
            if not viewer.can(what) and what != "account":
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


def _password_from_input() -> str:
    """A password at a prompt (twice), or one line of standard input when that is not a terminal."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


def _locales_option(locales: str) -> list[str]:
    return [x.strip() for x in locales.split(",") if x.strip()]


def _run(change: Callable[[Session], str]) -> None:
    """Run one account change in a transaction; its refusal is a plain message and exit status 1."""
    db = get_session()
    try:
        said = change(db)
        db.commit()
    except AccountError as exc:
        db.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(said)


@admin_cli.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--locales", default="", help="A reviewer's languages, comma-separated (es,fr).")
def create_user_command(email: str, role: str, locales: str) -> None:
    """Create an account. The password is asked for at a prompt, or read as one line from standard input
    when that is not a terminal."""
    password = _password_from_input()

    def change(db: Session) -> str:
        user = create_user(db, email, password, role, _locales_option(locales))
        return f"created {user.email} ({user.role})"

    _run(change)


@admin_cli.command("users")
def list_users_command() -> None:
    """List the accounts: email, role, languages, state, last sign-in."""
    db = get_session()
    for user in db.scalars(select(User).order_by(User.email)):
        state = "active" if user.active else "deactivated"
        if user.active and failed_sign_ins(db, user) >= MAX_FAILURES_ACCOUNT:
            state = "locked"
        last = user.last_sign_in_at.strftime("%Y-%m-%d %H:%M") if user.last_sign_in_at else "never"
        click.echo(f"{user.email}\t{user.role}\t{user.locales or 'all'}\t{state}\t{last}")


@admin_cli.command("set-password")
@click.argument("email")
def set_password_command(email: str) -> None:
    """Set an account's password (asked for at a prompt, or one line of standard input). Its sessions end; the
    user chooses their own at the next sign-in."""
    password = _password_from_input()

    def change(db: Session) -> str:
        user = find_user(db, email)
        set_password(db, user, password, by=command_line_actor())
        return f"password set for {user.email}; they choose their own at the next sign-in"

    _run(change)


@admin_cli.command("unlock")
@click.argument("email")
@click.option("--address", default="", help="Also forget the failed sign-ins from this IP address.")
def unlock_command(email: str, address: str) -> None:
    """Lift the lock after too many failed sign-ins."""

    def change(db: Session) -> str:
        user = find_user(db, email)
        unlock(db, user, by=command_line_actor(), address=address.strip())
        return f"{user.email} may sign in again"

    _run(change)


@admin_cli.command("set-role")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--locales", default="", help="A reviewer's languages, comma-separated (es,fr).")
def set_role_command(email: str, role: str, locales: str) -> None:
    """Change an account's role (and a reviewer's languages). Its sessions end."""

    def change(db: Session) -> str:
        user = find_user(db, email)
        changed = set_role(db, user, role, _locales_option(locales), by=command_line_actor())
        return f"{user.email} is {user.role}" + (f" ({user.locales})" if user.locales else "") + \
            ("" if changed else " already")

    _run(change)


def _set_active(email: str, active: bool) -> None:
    def change(db: Session) -> str:
        user = find_user(db, email)
        changed = set_active(db, user, active, by=command_line_actor())
        return f"{user.email} is {'active' if active else 'deactivated'}" + ("" if changed else " already")

    _run(change)


@admin_cli.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """The account can no longer sign in; its sessions end (it stays in the audit log)."""
    _set_active(email, False)


@admin_cli.command("activate")
@click.argument("email")
def activate_command(email: str) -> None:
    """Reactivate a deactivated account."""
    _set_active(email, True)


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


__all__: list[Any] = ["ROLES", "AccountError", "Viewer", "audit", "change_own_password", "create_user",
                      "current_viewer", "failed_sign_ins", "find_user", "normal_email", "requires", "set_active",
                      "set_password", "set_role", "sign_in", "unlock"]
