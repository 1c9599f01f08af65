"""The coordinators' web page at /admin: sign-in, overview, escalations to follow up, preview, users, audit.

Plain server-rendered pages (Jinja, one stylesheet, no script needed). Every form carries a CSRF token
(Flask-WTF); the Twilio webhooks are not checked for one, they are signed instead. The pages are a thin
face on the same functions the command line uses: no check, rule or publish logic of their own.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from . import accounts
from .accounts import AccountError, current_viewer, requires
from .conversation import State
from .db import get_session
from .direction import html_lang, text_direction
from .language import language_label
from .models import Acknowledgement, Alert, AuditEntry, Escalation, InboundMessage, UnansweredText, User, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/admin")
csrf = CSRFProtect()

LEVEL_COLOURS = {"emergency": "#a40000", "call_now": "#b35c00", "info": "#0a58ca", "none": "#6b6b6b"}
LEVEL_WORDS = {"emergency": "Emergency", "call_now": "Call now", "info": "Answer", "none": "Other reply"}
DAYS = 30


UPLOAD_BYTES = 5 * 1024 * 1024  # a catalog or a spreadsheet; the webhooks keep their 64 kB limit
# What every page of /admin answers with. The pages run no script; framing is refused (a hidden frame could
# get an acknowledge or publish button clicked), and nothing is cached: they show numbers and words.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


@bp.before_request
def _checks() -> None:
    if request.endpoint == "admin.upload":
        request.max_content_length = UPLOAD_BYTES + 64 * 1024
    if request.method == "POST":
        csrf.protect()  # every form of these pages; 400 with a plain message when missing or wrong


@bp.app_context_processor
def _viewer() -> dict[str, Any]:
    return {"viewer": current_viewer() if request.path.startswith("/admin") else None,
            "language_name": language_label, "html_lang": html_lang, "text_direction": text_direction,
            "level_words": LEVEL_WORDS}


# -- signing in and out -----------------------------------------------------------------------------------

@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error, email = "", ""
    if request.method == "POST":
        _warn_if_behind_an_unknown_proxy()
        email = request.form.get("email", "")[:254]
        user, error = accounts.sign_in(get_session(), email, request.form.get("password", "")[:1000],
                                       request.remote_addr or "unknown")
        if user is not None:
            accounts.start_session(user)
            return redirect(safe_next(request.args.get("next", "")) or url_for("admin.overview"))
    status = 429 if error.startswith("Too many") else (401 if error else 200)
    return render_template("admin/sign_in.html", error=error, email=email), status


_SAFE_PATH = re.compile(r"/admin(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")


def safe_next(target: str) -> str:
    """``target`` when it is a page of this site under /admin, else "" (an address from the query must not
    send a coordinator elsewhere, nor break the answer: a line break in a header is refused by the server)."""
    if not target or len(target) > 2000 or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return ""  # (urlsplit drops line breaks and tabs silently: they are refused here, before it)
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.fragment or not _SAFE_PATH.fullmatch(parts.path) \
            or "/../" in parts.path + "/" or re.search(r"[^A-Za-z0-9._~!$&'()*+,;=:@%/?-]", parts.query):
        return ""
    return target


_WARNED_PROXY: list[bool] = []


def _warn_if_behind_an_unknown_proxy() -> None:
    """Once per process: sign-ins arrive through a proxy that PROXY_HOPS does not count, so every coordinator
    shares the proxy's address and the limit per address locks them all out together."""
    if not _WARNED_PROXY and request.headers.get("X-Forwarded-For") and not current_app.config.get("PROXY_HOPS"):
        _WARNED_PROXY.append(True)
        log.warning("sign-ins come through a proxy (X-Forwarded-For) but PROXY_HOPS is 0: the sign-in limit per "
                    "address counts everyone as the proxy; set PROXY_HOPS (README, Settings)",
                    extra={"event": "config.proxy"})


@bp.post("/sign-out")
def sign_out():
    accounts.end_session(get_session())
    flash("You are signed out.")
    return redirect(url_for("admin.sign_in"))


# -- overview ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    day: date
    x: float
    parts: tuple[tuple[str, float, float, int], ...]  # (level, y, height, count)
    total: int


SEVERITY = {"none": 0, "info": 1, "call_now": 2, "emergency": 3}


@dataclass
class Counts:
    """Texts and calls over the last days: per day and level, per day and language, and totals."""

    dates: list[date]
    per_day: dict[date, dict[str, int]]  # day -> level -> count
    per_day_language: dict[date, dict[str, int]]  # day -> locale -> count
    per_language: dict[str, int]
    per_channel: dict[str, int]


def daily_counts(days: int = DAYS) -> Counts:
    """Per day by level and by language over the last ``days`` days, per language, and per channel: each text
    once, and each call once (its steps are rows of their own), at the most urgent level any of its steps
    reached, in the language of its first step."""
    db = get_session()
    start = (utcnow() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    contacts: dict[str, tuple[date, str, str, str]] = {}  # id -> (day, level, locale, channel)
    rows = db.execute(select(InboundMessage.received_at, InboundMessage.level, InboundMessage.locale,
                             InboundMessage.channel, InboundMessage.message_sid)
                      .where(InboundMessage.received_at >= start)
                      .order_by(InboundMessage.received_at, InboundMessage.id))
    for at, level, locale, channel, sid in rows:
        key = sid.split(":", 1)[0] if channel == "voice" else sid
        seen = contacts.get(key)
        if seen is None:
            contacts[key] = (at.date(), level, locale, channel)
        elif SEVERITY.get(level, 0) > SEVERITY.get(seen[1], 0):
            contacts[key] = (seen[0], level, seen[2], channel)
    counts = Counts([start.date() + timedelta(days=i) for i in range(days)], {}, {}, {}, {"sms": 0, "voice": 0})
    for d, level, locale, channel in contacts.values():
        day = counts.per_day.setdefault(d, {})
        day[level] = day.get(level, 0) + 1
        by_language = counts.per_day_language.setdefault(d, {})
        by_language[locale] = by_language.get(locale, 0) + 1
        counts.per_language[locale] = counts.per_language.get(locale, 0) + 1
        counts.per_channel[channel] = counts.per_channel.get(channel, 0) + 1
    return counts


def chart(dates: list[date], per_day: dict[date, dict[str, int]], height: float = 160.0,
          width: float = 620.0) -> tuple[list[Bar], int]:
    """Stacked bars, one a day, scaled to the busiest day (drawn as SVG by the template)."""
    top = max([sum(v.values()) for v in per_day.values()] or [0]) or 1
    step = width / len(dates)
    bars = []
    for i, d in enumerate(dates):
        counts, y, parts = per_day.get(d, {}), height, []
        for level in ("none", "info", "call_now", "emergency"):
            n = counts.get(level, 0)
            if n:
                h = height * n / top
                y -= h
                parts.append((level, round(y, 1), round(h, 1), n))
        bars.append(Bar(d, round(i * step, 1), tuple(parts), sum(counts.values())))
    return bars, top


def sparkline(dates: list[date], per_day_language: dict[date, dict[str, int]], locale: str, top: int,
              height: float = 24.0, step: float = 6.0) -> list[tuple[float, float, float, date, int]]:
    """One language's small bar chart, a bar a day, scaled to ``top`` (the busiest day of any language, so
    that the languages compare): (x, y, height, day, count) of each day with texts."""
    out = []
    for i, d in enumerate(dates):
        n = per_day_language.get(d, {}).get(locale, 0)
        if n:
            h = max(1.0, height * n / (top or 1))
            out.append((round(i * step, 1), round(height - h, 1), round(h, 1), d, n))
    return out


@bp.get("/")
@requires("view")
def overview():
    db = get_session()
    counts = daily_counts()
    bars, top = chart(counts.dates, counts.per_day)
    open_escalations = db.scalar(
        select(func.count()).select_from(Escalation)
        .outerjoin(Acknowledgement, Acknowledgement.escalation_id == Escalation.id)
        .where(Acknowledgement.escalation_id.is_(None))) or 0
    totals = {level: sum(v.get(level, 0) for v in counts.per_day.values()) for level in LEVEL_WORDS}
    languages = sorted(counts.per_language.items(), key=lambda kv: (-kv[1], kv[0]))
    busiest = max([n for day in counts.per_day_language.values() for n in day.values()] or [1])
    lines = {locale: sparkline(counts.dates, counts.per_day_language, locale, busiest) for locale, _ in languages}
    return render_template("admin/overview.html", bars=bars, top=top, dates=counts.dates, totals=totals,
                           languages=languages, lines=lines, busiest=busiest, per_day=counts.per_day,
                           per_day_language=counts.per_day_language, open_escalations=open_escalations,
                           colours=LEVEL_COLOURS, days=DAYS, per_channel=counts.per_channel, live=_live_revision())


def _live_revision() -> str:
    """What this worker answers from, in words."""
    watcher = current_app.extensions.get("catalog_watcher")
    revision = getattr(watcher, "revision", None)
    return f"revision #{revision}" if revision else "the files shipped with this version"


# -- escalations ------------------------------------------------------------------------------------------

@bp.get("/escalations")
@requires("escalations")
def escalations():
    state = request.args.get("state", "open")
    if state not in ("open", "acknowledged", "all"):
        state = "open"
    db = get_session()
    query = (select(Escalation, Acknowledgement)
             .outerjoin(Acknowledgement, Acknowledgement.escalation_id == Escalation.id)
             .order_by(Escalation.created_at.desc(), Escalation.id.desc()).limit(200))
    if state == "open":
        query = query.where(Acknowledgement.escalation_id.is_(None))
    elif state == "acknowledged":
        query = query.where(Acknowledgement.escalation_id.is_not(None))
    rows = db.execute(query).all()
    ids = [e.id for e, _ in rows]
    alerts: dict[int, list[tuple[str, str]]] = {}
    if ids:
        for escalation_id, to, status in db.execute(select(Alert.escalation_id, Alert.to_number, Alert.status)
                                                    .where(Alert.escalation_id.in_(ids)).order_by(Alert.id)):
            alerts.setdefault(escalation_id, []).append((to, status))
    return render_template("admin/escalations.html", rows=rows, alerts=alerts, state=state,
                           channel_of=lambda e: getattr(e, "channel", "sms"))


@bp.post("/escalations/<int:escalation_id>/acknowledge")
@requires("escalations")
def acknowledge(escalation_id: int):
    db = get_session()
    escalation = db.get(Escalation, escalation_id)
    if escalation is None:
        abort(404)
    viewer = current_viewer()
    note = request.form.get("note", "").strip()[:2000]
    back = redirect(url_for("admin.escalations", state=_state_arg()))
    ack = db.get(Acknowledgement, escalation_id)
    if ack is None:
        db.add(Acknowledgement(escalation_id=escalation_id, by=viewer.email, note=note))
        accounts.audit(db, viewer.email, "escalation.acknowledge", f"escalation #{escalation_id}",
                       "with a note" if note else "")
        try:
            db.commit()
            flash(f"Escalation #{escalation_id} acknowledged.")
            return back
        except IntegrityError:  # a colleague acknowledged it a moment before: theirs stands
            db.rollback()
            ack = db.get(Acknowledgement, escalation_id)
    # Said, never silently dropped: the follow-up is someone else's, and the note typed here was not kept.
    who = ack.by if ack else "someone else"
    when = f" (at {ack.at.strftime('%H:%M')} UTC)" if ack and ack.at else ""
    flash(f"Escalation #{escalation_id} was acknowledged by {who} already{when}"
          + ("; your note was not saved." if note else "."), "error")
    return back


def _state_arg() -> str:
    state = request.args.get("state", "open")
    return state if state in ("open", "acknowledged", "all") else "open"


# -- unanswered texts -------------------------------------------------------------------------------------

MAX_KEYWORD_WORDS = 5  # the catalogs' longest keyword ("is this a real person"); a whole sentence is a text


@bp.get("/unanswered")
@requires("publish")
def unanswered():
    from .retention import retention_days
    from .unanswered import groups

    catalog = current_app.extensions["assistant"].store.current
    topics = [(t.id, catalog.text("en", f"topic:{t.id}:title")) for t in catalog.source.topics]
    return render_template("admin/unanswered.html", groups=groups(get_session(), retention_days(current_app.config)),
                           topics=topics, days=retention_days(current_app.config),
                           max_words=MAX_KEYWORD_WORDS)


def keyword_problem(db, locale: str, keyword: str) -> str:
    """Why ``keyword`` cannot be added from the page ("" when it can). A keyword goes into the catalog, the
    revision's note and the audit log for good: a word or short phrase the coordinator chose, never a
    caregiver's text (their words are kept only for the retention period) nor a number."""
    from .retention import retention_days
    from .unanswered import key_of

    words = keyword.split()
    if len(words) > 1:
        since = utcnow() - timedelta(days=retention_days(current_app.config))
        texts = db.scalars(select(UnansweredText.text).where(UnansweredText.locale == locale,
                                                             UnansweredText.received_at >= since)
                           .limit(5000)).all()
        wanted = key_of(keyword)
        if wanted and any(key_of(t) == wanted for t in texts):
            return ("that is a caregiver's whole text: type only the word or short phrase that should lead to this "
                    "topic (a caregiver's words never go into the catalog or the audit log)")
    if len(words) > MAX_KEYWORD_WORDS:
        return (f"a keyword is a word or a short phrase (at most {MAX_KEYWORD_WORDS} words), like a drug's name: "
                "type only the words that should lead to this topic")
    if sum(ch.isdigit() for ch in keyword) > 2:
        return ("a keyword cannot hold a number (a phone number, a date, a record number...): numbers never go "
                "into the catalog")
    return ""


@bp.post("/unanswered/keyword")
@requires("publish")
def add_keyword():
    from .publishing import Refused
    from .publishing import add_keyword as add

    db = get_session()
    viewer = current_viewer()
    locale, topic = request.form.get("locale", ""), request.form.get("topic", "")
    keyword = " ".join(request.form.get("keyword", "").split())[:200]
    languages = current_app.extensions["assistant"].store.current.languages
    try:
        if locale not in languages:
            raise Refused("pick the language of the keyword")
        if not topic:
            raise Refused("pick the topic the keyword should lead to")
        problem = keyword_problem(db, locale, keyword)
        if problem:
            raise Refused(problem)
        if locale == "en":
            done = _add_english_keyword(db, topic, keyword, by=viewer.email)
        else:
            done = add(db, current_app._get_current_object(), locale, topic, keyword, by=viewer.email)
        flash(f"Draft revision #{done.id}: {keyword!r} added to {topic} in {language_label(locale)}. Preview it, "
              "then publish it below.")
        return redirect(url_for("admin.upload"))
    except Refused as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.unanswered"))


def _add_english_keyword(db, topic: str, keyword: str, *, by: str):
    """``keyword`` added to ``topic`` in English, as a draft: into the English catalog
    (locales/en/LC_MESSAGES/messages.po), whose keyword lists are served on top of messages/topics.toml's.
    The translations' entries keep their English (msgid), so none of them becomes stale or unreviewed, as an
    edit of topics.toml would make them. Stored by :func:`publishing.import_po`, like an upload of that file,
    so it is checked, stored and audited the same way."""
    from .catalogcheck import po_path, source_of
    from .pofile import parse_po
    from .publishing import Refused, import_po
    from .source import SourceError, split_list
    from .spreadsheets import edit_po

    keyword = " ".join(keyword.split())[:80]
    if not keyword or "," in keyword:
        raise Refused("give one keyword or phrase, without commas")
    _rev, content = _live_content()
    try:
        source = source_of(content)
    except SourceError as exc:
        raise Refused(str(exc)) from exc
    key = f"topic:{topic}:keywords"
    entries = {e.context: e for e in source.entries}
    if key not in entries:
        raise Refused(f"there is no topic {topic!r}")
    data = content.get(po_path("en"))
    parsed = parse_po(data) if data is not None else None
    if parsed is None or parsed.errors:
        raise Refused(f"{po_path('en')} is missing or does not read; run `assistant catalog check`")
    old_entry = parsed.by_context().get(key)
    old = old_entry.msgstr if old_entry is not None and old_entry.msgstr.strip() else entries[key].msgid
    if keyword.casefold() in {w.casefold() for w in split_list(old) + split_list(entries[key].msgid)}:
        raise Refused(f"{keyword!r} is already a keyword of this topic in en")
    new = edit_po(data.decode("utf-8"), [(old_entry, key, f"{old}, {keyword}", True)], entries).encode("utf-8")
    done = import_po(db, current_app._get_current_object(), new, "en", by=by,
                     note=f"keyword {keyword!r} for {topic} in en")
    accounts.audit(db, by, "catalog.keyword", f"en {topic}", f"draft revision #{done.id}: {keyword!r}")
    db.commit()
    return done


# -- catalog: coverage, review, upload, publish, history ---------------------------------------------------

_REPORTS: dict[str, Any] = {}  # the check of a content, by its digest: building one takes a second or two
_DRAFTS: dict[tuple[str, Any], Any] = {}  # the assistant of a draft revision's content, for previews


def _live_content() -> tuple[int | None, dict[str, bytes]]:
    from .revisions import live_content, repository_content

    return live_content(get_session(), repository_content(current_app._get_current_object()))


def _report(content: dict[str, bytes]):
    from .catalogcheck import check_content
    from .revisions import digest

    key = digest(content)
    if key not in _REPORTS:
        if len(_REPORTS) > 4:
            _REPORTS.pop(next(iter(_REPORTS)))
        _REPORTS[key] = check_content(content)
    return _REPORTS[key]


# The catalog's entries by kind (the first part of their key), as a coordinator names them.
GROUPS = {
    "topic": "Topics: titles, keywords and answers",
    "text": "System replies (escalations, help, fallback, opt-out...)",
    "rule": "Symptom phrases (triage)",
    "command": "Command words (HELP, MENU, STOP...)",
    "cue": "Language cues",
    "voice": "Phone calls: what callers hear",
}


@dataclass(frozen=True)
class EntryRow:
    """One entry of the catalog in one language, as the Catalog pages show it."""

    key: str
    locale: str
    english: str
    text: str
    is_list: bool
    note: str
    reviewed: bool
    stale: bool
    segments: int
    encoding: str

    @property
    def name(self) -> str:
        return self.key.split(":", 1)[1] if ":" in self.key else self.key


def _entry_rows(report, keys: list[str], locales: list[str], state: str = "all") -> list[EntryRow]:
    """Each of ``keys`` in each of ``locales``: English, the translation, its size, whether it is reviewed."""
    from .segments import measure

    source = {e.context: e for e in report.catalog.source.entries}
    rows = []
    for key in keys:
        entry = source.get(key)
        if entry is None:
            continue
        for locale in locales:
            found = report.files.get(locale).by_context().get(key) if report.files.get(locale) else None
            text = found.msgstr if found is not None and found.msgstr.strip() else ""
            if locale == "en":
                text = text or entry.msgid
            stale = locale != "en" and bool(text) and found is not None and (
                found.msgid != entry.msgid or (found.previous_msgid is not None
                                               and found.previous_msgid != found.msgid))
            reviewed = locale == "en" or (bool(text) and not found.fuzzy and not stale)
            if state == "needs_work" and (reviewed or not text):
                continue
            size = measure(text) if text and not entry.is_list else None
            rows.append(EntryRow(key, locale, entry.msgid, text, entry.is_list, entry.comment, reviewed, stale,
                                 size.segments if size else 0, size.encoding if size else ""))
    return rows


@bp.get("/catalog")
@requires("view")
def catalog():
    rev, content = _live_content()
    report = _report(content)
    topics = [(t.id, report.catalog.text("en", f"topic:{t.id}:title")) for t in report.catalog.source.topics] \
        if report.catalog else []
    counts: dict[str, int] = {}
    if report.catalog:
        for e in report.catalog.source.entries:
            group = e.context.split(":", 1)[0]
            counts[group] = counts.get(group, 0) + 1
    return render_template("admin/catalog.html", rev=rev, report=report, topics=topics, groups=GROUPS,
                           group_counts=counts)


@bp.get("/catalog/topic/<topic>")
@requires("view")
def catalog_topic(topic: str):
    rev, content = _live_content()
    report = _report(content)
    if report.catalog is None or topic not in report.catalog.topics:
        abort(404)
    cat = report.catalog
    keys = [f"topic:{topic}:title", f"topic:{topic}:keywords", f"topic:{topic}:summary"]
    rows = _entry_rows(report, keys, list(cat.languages))
    return render_template("admin/catalog_topic.html", rev=rev, topic=topic,
                           title=cat.text("en", f"topic:{topic}:title"), rows=rows)


@bp.get("/catalog/entries")
@requires("view")
def catalog_entries():
    """Every entry of one kind, or every entry of one language: how a reviewer goes through what needs work."""
    rev, content = _live_content()
    report = _report(content)
    if report.catalog is None:
        abort(404)
    cat = report.catalog
    group = request.args.get("group", "")
    locale = request.args.get("locale", "")
    state = request.args.get("state", "all")
    if group not in GROUPS:
        group = ""
    if locale not in cat.languages:
        locale = ""
    if state not in ("all", "needs_work"):
        state = "all"
    if not group and not locale:
        group = "text"  # every entry in every language would be 1,500 rows
    keys = [e.context for e in cat.source.entries if not group or e.context.split(":", 1)[0] == group]
    rows = _entry_rows(report, keys, [locale] if locale else list(cat.languages), state)
    viewer = current_viewer()
    return render_template("admin/catalog_entries.html", rev=rev, rows=rows, groups=GROUPS, group=group,
                           locale=locale, state=state, languages=cat.languages,
                           bulk=bool(locale) and locale != "en" and viewer.reviews(locale))


MAX_REVIEW_KEYS = 200


@bp.post("/catalog/review")
@requires("review")
def catalog_review():
    from .publishing import Refused, review

    viewer = current_viewer()
    locale = request.form.get("locale", "")
    # One entry (its own button), or the entries ticked on a language's list.
    keys = [request.form["key"]] if request.form.get("key") else request.form.getlist("keys")[:MAX_REVIEW_KEYS]
    if not viewer.reviews(locale):
        abort(403)
    back = safe_next(request.form.get("back", "")) or url_for("admin.catalog")
    if not keys:
        flash("Tick the entries to mark reviewed first.", "error")
        return redirect(back)
    db = get_session()
    try:
        done = review(db, current_app._get_current_object(), locale, keys, by=viewer.email)
        what = keys[0] if len(keys) == 1 else f"{len(keys)} entries"
        flash(f"{what} in {language_label(locale)} marked reviewed" + (f" (revision #{done.id})." if done else "."))
    except Refused as exc:
        db.rollback()
        flash(exc.message, "error")
    return redirect(back)


@bp.route("/upload", methods=["GET", "POST"])
@requires("publish")
def upload():
    from .publishing import Refused, import_po, import_sheet
    from .revisions import history

    db = get_session()
    viewer = current_viewer()
    languages = current_app.extensions["assistant"].store.current.languages
    result, refused, unchanged, name, locale = None, None, "", "", request.form.get("locale", "")
    if request.method == "POST":
        file = request.files.get("file")
        note = request.form.get("note", "")[:500]
        name = (file.filename or "") if file else ""
        data = file.read(UPLOAD_BYTES + 1) if file else b""
        app = current_app._get_current_object()
        try:
            if not name or not data:
                raise Refused("choose a file: a language's .po (from Poedit) or a spreadsheet from the export")
            if len(data) > UPLOAD_BYTES:
                raise Refused("that file is larger than 5 MB: it is not a catalog")
            if name.lower().endswith(".po"):
                if locale not in languages:
                    raise Refused("pick the language of this .po file")
                if _same_entries_as_live(data, locale):
                    unchanged = (f"{name}: no changes. Every entry is the same as in the live {language_label(locale)} "
                                 "catalog; nothing was stored.")
                else:
                    result = import_po(db, app, data, locale, by=viewer.email, note=note)
            elif name.lower().endswith((".xlsx", ".csv")):
                result = import_sheet(db, app, data, name, locale or None, by=viewer.email, note=note)
                if result is None:
                    unchanged = f"{name}: no changes. Every row is the same as the live catalog; nothing was stored."
                else:
                    locale = result.locale or locale
            else:
                raise Refused(f"{name}: give a .po, .xlsx or .csv file")
        except Refused as exc:
            db.rollback()
            refused = exc
    sheet = name.lower().endswith((".xlsx", ".csv"))
    warnings, elsewhere = _draft_warnings(result, locale, sheet) if result is not None else ([], 0)
    rows = history(db, 30)
    live = next((r.id for r in rows if not r.draft), None)
    return render_template("admin/upload.html", languages=languages, locale=locale, result=result, refused=refused,
                           unchanged=unchanged, warnings=warnings, elsewhere=elsewhere,
                           note=request.form.get("note", "") if refused else "",
                           history=rows, live=live, changes_of=_changes_of), 422 if refused else 200


def _same_entries_as_live(data: bytes, locale: str) -> bool:
    """True when the uploaded .po has exactly the entries of the live one (English, translation, "Needs work"):
    storing it would make a draft that changes nothing. A file that does not read is left to the check."""
    from .catalogcheck import po_path
    from .pofile import parse_po

    live = _live_content()[1].get(po_path(locale))
    if live is None:
        return False
    new, old = parse_po(data), parse_po(live)
    if new.errors or old.errors:
        return False

    def entries(f):
        return {k: (e.msgid, e.msgstr, e.fuzzy) for k, e in f.by_context().items()}

    return entries(new) == entries(old)


@dataclass(frozen=True)
class CheckWarning:
    text: str
    new: bool  # not a warning of the live content: this upload brought it
    entries: tuple[str, ...] = ()  # a warning about many entries ("N entries unreviewed"): each, with its line


def _entry_of(where: str) -> str:
    """The entry a problem's place names: "locales/es/LC_MESSAGES/messages.po:12 (text:help)" -> "text:help"."""
    found = re.search(r"\(([^()]*)\)\s*$", where)
    return found.group(1) if found else ""


def _same_warning(p) -> tuple[str, str, str]:
    """What makes two warnings the same one, whatever their line: language, entry and message (for a warning
    about no one entry, such as "124 entries unreviewed", the message without its numbers)."""
    entry = _entry_of(p.where)
    return p.locale, entry, p.message if entry else re.sub(r"\d+", "#", p.message)


def _draft_warnings(result, locale: str, sheet: bool) -> tuple[list[CheckWarning], int]:
    """The check's warnings about the uploaded language, each with its file, line and entry, those this upload
    brought first (a spreadsheet's are among the import's lines already, with their rows); and how many
    concern other languages."""
    from .catalogcheck import po_path

    report = result.report
    mine: list[CheckWarning] = []
    if not sheet:
        live = _report(_live_content()[1])
        before = {_same_warning(p) for p in live.warnings}
        parsed = report.files.get(locale)
        unreviewed = tuple(f"{po_path(locale)}:{e.lineno} ({e.context})" for e in parsed.entries
                           if e.msgid and e.fuzzy and e.msgstr.strip()) if parsed is not None else ()
        for p in report.warnings:
            if p.locale == locale:
                many = unreviewed if "entries unreviewed" in p.message else ()
                mine.append(CheckWarning(str(p), _same_warning(p) not in before, many))
        mine.sort(key=lambda w: not w.new)
    return mine, sum(1 for p in report.warnings if p.locale != locale)


_ENGLISH_CHANGES: dict[tuple, dict[str, list[str]]] = {}  # a revision's English catalog's changed entries


def _changed(revision) -> dict[str, dict[str, list[str]]]:
    """What ``revision`` changed, per language (as stored), plus the English catalog's entries (keywords added
    on the Unanswered page), which the stored changes leave out."""
    import json

    changed = json.loads(revision.changes or "{}")
    if revision.parent_id and "en" not in changed:
        # Revisions never change; by content and time, not number (tests run several databases).
        key = (revision.id, revision.digest, revision.parent_id, revision.created_at)
        if key not in _ENGLISH_CHANGES:
            if len(_ENGLISH_CHANGES) > 500:
                _ENGLISH_CHANGES.clear()
            _ENGLISH_CHANGES[key] = _english_changes(revision)
        if _ENGLISH_CHANGES[key]:
            changed = {"en": _ENGLISH_CHANGES[key], **changed}
    return changed


def _english_changes(revision) -> dict[str, list[str]]:
    import io
    import zipfile

    from .catalogcheck import po_path
    from .pofile import parse_po
    from .revisions import get

    parent = get(get_session(), revision.parent_id)
    if parent is None:
        return {}

    def english(row) -> bytes:
        try:
            with zipfile.ZipFile(io.BytesIO(row.content)) as zf:
                return zf.read(po_path("en"))
        except (KeyError, zipfile.BadZipFile):
            return b""

    old, new = english(parent), english(revision)
    if old == new:
        return {}
    a = {k: e.msgstr for k, e in parse_po(old).by_context().items()} if old else {}
    b = {k: e.msgstr for k, e in parse_po(new).by_context().items()} if new else {}
    diff = {"added": sorted(k for k in b if k not in a), "changed": sorted(k for k in b if k in a and a[k] != b[k]),
            "removed": sorted(k for k in a if k not in b)}
    return {k: v for k, v in diff.items() if v}


def _changes_of(revision) -> str:
    from .revisions import summary

    return summary(_changed(revision))


@bp.post("/revisions/<int:number>/publish")
@requires("publish")
def publish_revision(number: int):
    return _revision_action(number, "publish")


@bp.post("/revisions/<int:number>/restore")
@requires("publish")
def restore_revision(number: int):
    return _revision_action(number, "rollback")


def _revision_action(number: int, action: str):
    from .publishing import POLL_SECONDS, Refused, publish_draft, rollback

    db = get_session()
    viewer = current_viewer()
    note = request.form.get("note", "")[:500]
    app = current_app._get_current_object()
    try:
        if action == "publish":
            done = publish_draft(db, app, number, by=viewer.email, note=note)
        else:
            done = rollback(db, app, number, by=viewer.email, note=note)
        flash(f"Revision #{done.id} is live ({done.summary}); every worker answers from it within about "
              f"{POLL_SECONDS:.0f} seconds.")
    except Refused as exc:
        db.rollback()
        flash(exc.message + (": " + "; ".join(exc.lines[:5]) if exc.lines else ""), "error")
    return redirect(url_for("admin.upload"))


@bp.get("/revisions/<int:number>")
@requires("view")
def revision(number: int):
    from .revisions import get

    row = get(get_session(), number)
    if row is None:
        abort(404)
    return render_template("admin/revision.html", r=row, changed=_changed(row))


# -- preview ----------------------------------------------------------------------------------------------

@bp.route("/preview", methods=["GET", "POST"])
@requires("view")
def preview():
    assistant = current_app.extensions["assistant"]
    languages = assistant.store.current.languages
    from sqlalchemy.exc import SQLAlchemyError

    from .models import CatalogRevision

    try:
        drafts = get_session().scalars(select(CatalogRevision).where(CatalogRevision.draft.is_(True))
                                       .order_by(CatalogRevision.id.desc()).limit(10)).all()
    except SQLAlchemyError:
        drafts = []
    text, locale, reply, source = "", "", None, request.values.get("revision", "live")
    if request.method == "POST":
        text = request.form.get("text", "")[:2000]
        locale = request.form.get("locale", "")
        state = State(locale=locale, locale_explicit=True) if locale in languages else State()
        speaker = assistant
        if source != "live":
            speaker = _draft_assistant(source)
            if speaker is None:
                flash("That draft cannot be previewed (it does not load).", "error")
                speaker = assistant
        reply = speaker.reply(text, state)
    return render_template("admin/preview.html", text=text, locale=locale, reply=reply, languages=languages,
                           drafts=drafts, source=source)


def _draft_assistant(number: str):
    """The assistant as it would answer from draft revision ``number`` (built once, kept for the next preview)."""
    from .catalog import CatalogStore
    from .conversation import Assistant
    from .revisions import PublishError, build_revision, get, unpack

    if not number.isdigit():
        return None
    row = get(get_session(), int(number))
    if row is None:
        return None
    # By content, not number: revision #2 of one database is not #2 of another (tests run several apps).
    settings = current_app.extensions["assistant"].settings
    key = (row.digest, settings)
    if key not in _DRAFTS:
        try:
            catalog = build_revision(unpack(row.content), settings.serve_unreviewed)
        except PublishError:
            return None
        if len(_DRAFTS) > 3:
            _DRAFTS.pop(next(iter(_DRAFTS)))
        _DRAFTS[key] = Assistant(CatalogStore(catalog), settings)
    return _DRAFTS[key]


# -- users and audit --------------------------------------------------------------------------------------

def _locales_field() -> list[str]:
    """A reviewer's languages: ticked boxes, or codes typed with commas."""
    return [x.strip() for value in request.form.getlist("locales") for x in value.split(",") if x.strip()]


@bp.route("/users", methods=["GET", "POST"])
@requires("users")
def users():
    db = get_session()
    viewer = current_viewer()
    if request.method == "POST":
        form = request.form
        if form.get("action", "create") != "create":  # the list's own buttons, as on an account's page
            return _account_action(_user_or_404(form.get("id", "")), form.get("action", ""),
                                   back=url_for("admin.users"))
        try:
            user = accounts.create_user(db, form.get("email", ""), form.get("password", ""), form.get("role", ""),
                                        _locales_field(), by=viewer.email)
            db.commit()
            flash(f"Account created for {user.email}.")
        except AccountError as exc:
            db.rollback()
            flash(str(exc), "error")
        return redirect(url_for("admin.users"))
    rows = db.scalars(select(User).order_by(User.email)).all()
    failures = {u.id: accounts.failed_sign_ins(db, u) for u in rows}
    return render_template("admin/users.html", users=rows, failures=failures, locked_at=accounts.MAX_FAILURES_ACCOUNT,
                           roles=accounts.ROLES, languages=current_app.extensions["assistant"].store.current.languages,
                           min_password=accounts.MIN_PASSWORD)


def _user_or_404(value: Any) -> User:
    """The account a form names by id; a clear 404 page for anything else (a bad id is not a 500)."""
    text = str(value or "").strip()
    user = get_session().get(User, int(text)) if text.isdigit() and len(text) < 10 else None
    if user is None:
        abort(404, description="There is no such account: it may have been removed. Go back to Users.")
    return user


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@requires("users")
def user_page(user_id: int):
    """One account: its role and languages, a new password, the sign-in lock, deactivate or reactivate, and
    the audit log's lines about it."""
    db = get_session()
    user = _user_or_404(user_id)
    if request.method == "POST":
        return _account_action(user, request.form.get("action", ""), back=url_for("admin.user_page", user_id=user.id))
    history = db.scalars(select(AuditEntry).where(AuditEntry.target == user.email)
                         .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(50)).all()
    return render_template("admin/user.html", user=user, failures=accounts.failed_sign_ins(db, user),
                           locked_at=accounts.MAX_FAILURES_ACCOUNT, roles=accounts.ROLES, history=history,
                           languages=current_app.extensions["assistant"].store.current.languages,
                           min_password=accounts.MIN_PASSWORD)


ACCOUNT_ACTIONS = ("role", "password", "unlock", "deactivate", "activate")


def _account_action(user: User, action: str, *, back: str):
    """One change to ``user`` by the signed-in admin, audited; said in a message on the page it came from."""
    db = get_session()
    viewer = current_viewer()
    if action not in ACCOUNT_ACTIONS:
        abort(400, description="This form is not one of this page's: reload the page and try again.")
    if user.id == viewer.id and action != "unlock":
        flash("You cannot change your own role or access here: another admin can. Change your own password on "
              "Your account.", "error")
        return redirect(back)
    try:
        if action == "role":
            changed = accounts.set_role(db, user, request.form.get("role", ""), _locales_field(), by=viewer.email)
            said = (f"{user.email} is now {user.role}" + (f" ({user.locales})" if user.locales else "")
                    + "; their sessions ended.") if changed else f"{user.email}: nothing changed."
        elif action == "password":
            accounts.set_password(db, user, request.form.get("password", "")[:accounts.MAX_PASSWORD + 1],
                                  by=viewer.email)
            said = (f"New password set for {user.email}; their sessions ended. Give it to them in person or by "
                    "phone: they choose their own at the next sign-in.")
        elif action == "unlock":
            accounts.unlock(db, user, by=viewer.email)
            said = f"{user.email} may sign in again now."
        else:
            changed = accounts.set_active(db, user, action == "activate", by=viewer.email)
            said = (f"{user.email} can sign in again." if action == "activate" else
                    f"{user.email} can no longer sign in; their sessions ended.") if changed else \
                f"{user.email}: nothing changed."
        db.commit()
        flash(said)
    except AccountError as exc:
        db.rollback()
        flash(str(exc), "error")
    return redirect(back)


@bp.route("/account", methods=["GET", "POST"])
@requires("account")
def account():
    """The signed-in user's own account: their password."""
    db = get_session()
    viewer = current_viewer()
    user = db.get(User, viewer.id)
    if request.method == "POST":
        new = request.form.get("new_password", "")[:accounts.MAX_PASSWORD + 1]
        try:
            if new != request.form.get("repeat_password", "")[:accounts.MAX_PASSWORD + 1]:
                raise AccountError("the new password and its repetition differ")
            accounts.change_own_password(db, user, request.form.get("current_password", ""), new)
            db.commit()
            accounts.start_session(user)  # this session goes on; every other one has ended
            flash("Your password is changed; you were signed out everywhere else.")
            return redirect(url_for("admin.account"))
        except AccountError as exc:
            db.rollback()
            flash(str(exc), "error")
            return render_template("admin/account.html", user=user, min_password=accounts.MIN_PASSWORD), 422
    if viewer.must_change_password:
        flash("An admin set your password: choose your own to go on.", "error")
    return render_template("admin/account.html", user=user, min_password=accounts.MIN_PASSWORD)


@bp.get("/audit")
@requires("audit")
def audit_log():
    entries = get_session().scalars(select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                    .limit(300)).all()
    return render_template("admin/audit.html", entries=entries)


def _csrf_failed(exc: CSRFError):
    if not request.path.startswith("/admin"):
        return exc
    return render_template("admin/message.html", title="The form expired",
                           message="This page was open too long or came from elsewhere. Go back, reload the "
                                   "page and try again."), 400


ERROR_PAGES = {
    400: ("This request cannot be done", "Go back, reload the page and try again."),
    403: ("Not allowed", "Your role does not allow this. Ask an admin if you need it."),
    404: ("Not found", "There is nothing at this address. Go back, or start from the Overview."),
}


@bp.errorhandler(HTTPException)
def _error_page(exc: HTTPException):
    """The page's own errors in words, with the site's header (a plain page for the others)."""
    if exc.code not in ERROR_PAGES:
        return exc
    title, default = ERROR_PAGES[exc.code]
    described = exc.description if exc.description and exc.description != type(exc).description else default
    return render_template("admin/message.html", title=title, message=described), exc.code


def _security_headers(response):
    if request.path.startswith("/admin"):
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
    return response


def init_app(app: Flask) -> None:
    # Forms are checked on these pages only (before_request above): the webhooks are signed instead.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_blueprint(bp)
    app.after_request(_security_headers)
