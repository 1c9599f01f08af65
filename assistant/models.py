"""What the assistant remembers: senders, inbound messages, escalations and the alert outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Naive UTC: stored the same way by SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Sender(Base):
    """One phone number: language, opt-out state, and what its last numbered list meant."""

    __tablename__ = "senders"

    phone: Mapped[str] = mapped_column(String(40), primary_key=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    locale_explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    menu: Mapped[str] = mapped_column(Text, default="")  # "topic:fever topic:chills" or "lang:en lang:es ..."
    more: Mapped[str] = mapped_column(Text, default="")
    reply_locale: Mapped[str | None] = mapped_column(String(16))  # of the last reply: MORE goes on in it
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(DateTime)
    opted_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class InboundMessage(Base):
    """Every inbound text, once, keyed by Twilio's MessageSid; a retry gets the stored reply. A call's steps
    are kept here too (channel "voice"), keyed by CallSid and step number, with what was said."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str] = mapped_column(String(40), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    level: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str | None] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(16))
    reply: Mapped[str | None] = mapped_column(Text)  # None: nothing was sent (STOP, opted out)
    channel: Mapped[str] = mapped_column(String(8), default="sms", server_default="sms")  # sms or voice


class Escalation(Base):
    """A text that needed the care team: what, when, in which language, from whom."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    level: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str | None] = mapped_column(String(40))
    rules: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str] = mapped_column(String(40), index=True)
    text: Mapped[str] = mapped_column(Text)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(8), default="sms", server_default="sms")  # sms or voice


class Alert(Base):
    """An SMS waiting in the outbox until a worker sends it: to on-call staff about an escalation, or (no
    escalation) to a caller who asked on the phone for a text (an answer, the care-team number)."""

    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"), index=True)
    to_number: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    # pending -> sending -> sent -> delivered | undelivered | failed
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)


# -- the coordinators' web page ----------------------------------------------------------------------------

class User(Base):
    """Someone who signs in at /admin: an admin (users), a coordinator (publish, rollback, escalations) or a
    reviewer (marks translations reviewed in their own languages)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    locales: Mapped[str] = mapped_column(String(255), default="")  # a reviewer's languages, comma-separated
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_version: Mapped[int] = mapped_column(Integer, default=1)  # raised on sign-out: old cookies stop working
    # An admin set the password (they know it): the user chooses their own before anything else.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEntry(Base):
    """Who did what, when: every publish, rollback, review, acknowledgement and account change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(Text, default="")  # never a caregiver's words or number


class SignInFailure(Base):
    """A failed sign-in, per account and per address, for the limit on attempts (without Redis)."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class UnansweredText(Base):
    """A text the catalog could not answer (the fallback, or "did you mean"): what tells coordinators which
    keywords or topics are missing. Deleted after MESSAGE_RETENTION_DAYS."""

    __tablename__ = "unanswered_texts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    phone: Mapped[str] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # fallback or did_you_mean
    text: Mapped[str] = mapped_column(Text)


class Acknowledgement(Base):
    """A coordinator's follow-up of an escalation: who, when, and a note."""

    __tablename__ = "acknowledgements"

    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"), primary_key=True)
    by: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


# -- catalog publishing --------------------------------------------------------------------------------------

class CatalogRevision(Base):
    """One whole version of the content (messages/*.toml and every locale's .po), as published (or a draft
    from a spreadsheet import). The live revision is the newest one that is not a draft: a rollback is a new
    revision holding an older one's content, so history only grows."""

    __tablename__ = "catalog_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))  # repository, publish, rollback, import
    draft: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the content: an unchanged publish is refused
    content: Mapped[bytes] = mapped_column(LargeBinary)  # a zip of the files, by repository path
    changes: Mapped[str] = mapped_column(Text, default="{}")  # JSON: per locale, entries added/changed/removed


class CatalogReview(Base):
    """A translation marked reviewed by a qualified translator: who, when, and the exact wording (hashes of the
    English and of the translation), so any later change of either makes it unreviewed again."""

    __tablename__ = "catalog_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    locale: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(120))  # the msgctxt
    english_sha: Mapped[str] = mapped_column(String(64))
    translation_sha: Mapped[str] = mapped_column(String(64))
    reviewed_by: Mapped[str] = mapped_column(String(120))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_catalog_reviews_entry", "locale", "key"),)
