"""Catalog revisions in the database, publishing, and every process picking up the live one without a restart.

Why the database: hosted web servers lose their disk on restart, and every web worker and the alert worker
must agree on one live version. A revision is the whole content (see catalogcheck.Content) as one zip, with
who, when, a note and what changed against its parent. The live revision is the newest that is not a draft;
a rollback stores an older revision's content again as a new one, so the live id only grows and a worker
needs to compare one number.

Each process runs a :class:`CatalogWatcher`: a daemon thread that asks the database for the live id every
``POLL_SECONDS`` (one indexed query: no measurable cost per text, see bench/publish.py), and on a new id
builds the whole catalog off to the side and only then swaps it in (``CatalogStore.swap``): no request
is ever answered from a half-loaded catalog. A revision that does not build cleanly (however it got into
the database) is refused: the worker keeps its catalog and logs an error.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .catalog import SOURCE_LOCALE, Catalog, CatalogStore
from .catalogcheck import Content, Report, build, check_content, missing_code_texts, read_dirs
from .models import CatalogRevision, utcnow
from .pofile import parse_po
from .source import SourceError

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0  # how often a process asks for the live revision: the publish-to-every-worker delay
_ZIP_DATE = (2026, 1, 1, 0, 0, 0)  # fixed, so the same content always gives the same bytes


class PublishError(Exception):
    """A publish or rollback that was refused; the message says why, in plain words."""


# --- content <-> stored bytes ------------------------------------------------------------------------


def pack(content: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(content):
            zf.writestr(zipfile.ZipInfo(path, _ZIP_DATE), content[path])
    return buf.getvalue()


def unpack(data: bytes) -> Content:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def digest(content: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for path in sorted(content):
        h.update(path.encode() + b"\0" + hashlib.sha256(content[path]).digest())
    return h.hexdigest()


# --- what changed ------------------------------------------------------------------------------------


def _entries(content: Mapping[str, bytes]) -> dict[str, dict[str, tuple[str, str, bool]]]:
    """locale -> msgctxt -> (msgid, msgstr, fuzzy); English from the source."""
    out: dict[str, dict[str, tuple[str, str, bool]]] = {}
    for path, data in content.items():
        if path.startswith("locales/") and path.endswith("/messages.po"):
            locale = path.split("/")[1]
            if locale == SOURCE_LOCALE:
                continue
            out[locale] = {e.context or "": (e.msgid, e.msgstr, e.fuzzy)
                           for e in parse_po(data).entries if e.msgid}
    try:
        from .catalogcheck import source_of

        out[SOURCE_LOCALE] = {e.context: (e.msgid, e.msgid, False) for e in source_of(content).entries}
    except SourceError:
        out[SOURCE_LOCALE] = {}
    return out


def changes(parent: Mapping[str, bytes] | None, child: Mapping[str, bytes]) -> dict[str, dict[str, list[str]]]:
    """Per locale, the msgctxt keys added, changed (text or review mark) and removed against ``parent``."""
    old = _entries(parent) if parent is not None else {}
    new = _entries(child)
    out: dict[str, dict[str, list[str]]] = {}
    for locale in sorted(set(old) | set(new)):
        a, b = old.get(locale, {}), new.get(locale, {})
        diff = {"added": sorted(k for k in b if k not in a and b[k][1]),
                "changed": sorted(k for k in b if k in a and a[k] != b[k]),
                "removed": sorted(k for k in a if k not in b and a[k][1])}
        if any(diff.values()):
            out[locale] = diff
    return out


def summary(changed: Mapping[str, Mapping[str, list[str]]]) -> str:
    if not changed:
        return "no entry changed"
    parts = []
    for locale, diff in changed.items():
        bits = [f"{len(v)} {k}" for k, v in diff.items() if v]
        parts.append(f"{locale}: {', '.join(bits)}")
    return "; ".join(parts)


# --- a draft's own changes, applied onto the live revision ------------------------------------------


@dataclass(frozen=True)
class Conflict:
    """One entry (or English file) changed both by a draft and, since the draft was made, in the live catalog."""

    locale: str  # "en" for messages/*.toml
    key: str  # the msgctxt, or the file for the English source
    ours: str  # what the draft (or the file) has
    theirs: str  # what the live revision has

    def __str__(self) -> str:
        if self.key.startswith(("messages/", "locales/")):
            return f"conflict: {self.key}: {self.ours} here, and changed differently in the live catalog since"
        theirs = self.theirs if self.theirs.startswith("a new English text") else _clip(self.theirs)
        return (f"conflict: [{self.locale}] {self.key}: this change has {_clip(self.ours)}, the live catalog now has "
                f"{theirs}")


def _clip(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...") if text else "nothing"


def _entry_blocks(text: str, parsed) -> dict[str, tuple[int, int]]:
    """msgctxt -> (first, end) line indexes of its whole block: comments above it to the last string line."""
    lines = text.split("\n")
    out = {}
    for e in parsed.entries:
        if not e.msgid:
            continue
        start = e.lineno - 1
        while start > 0 and lines[start - 1].startswith("#") and not lines[start - 1].startswith("#~"):
            start -= 1
        end = e.msgstr_lineno
        while end < len(lines) and lines[end].strip() and not lines[end].startswith(("#", "msgctxt", "msgid")):
            end += 1  # continuation strings and other plural forms
        out[e.context or ""] = (start, end)
    return out


def _meaning(e) -> tuple | None:
    return None if e is None else (e.msgid, e.msgstr, e.fuzzy, e.previous_msgid)


def _rebase_po(locale: str, base: bytes | None, ours: bytes, theirs: bytes) -> tuple[bytes, list[Conflict]]:
    """``theirs`` with each entry ``ours`` changed against ``base`` replaced by ours' version of it."""
    files = [parse_po(x) if x is not None else None for x in (base, ours, theirs)]
    if any(f is not None and f.errors for f in files):
        return theirs, [Conflict(locale, po_path_of(locale), "does not read", "")]
    b, o, t = ({} if f is None else f.by_context() for f in files)
    ours_text, theirs_text = ours.decode("utf-8"), theirs.decode("utf-8")
    ours_lines = ours_text.split("\n")
    ours_blocks = _entry_blocks(ours_text, files[1])
    theirs_blocks = _entry_blocks(theirs_text, files[2])
    conflicts, swaps, append = [], {}, []
    for key in [*o, *(k for k in b if k not in o)]:
        mine, before, now = _meaning(o.get(key)), _meaning(b.get(key)), _meaning(t.get(key))
        if mine in (before, now):
            continue  # not changed by us, or the same change already live
        if now != before:
            english_changed = key in t and key in b and t[key].msgid != b[key].msgid
            conflicts.append(Conflict(locale, key, o[key].msgstr if key in o else "",
                                      f"a new English text ({t[key].msgid[:40]})" if english_changed
                                      else t[key].msgstr if key in t else ""))
            continue
        block = [] if key not in o else ours_lines[slice(*ours_blocks[key])]
        if key in t:
            swaps[theirs_blocks[key]] = block
        else:
            append.append(block)
    if conflicts:
        return theirs, conflicts
    lines = theirs_text.split("\n")
    for (start, end), block in sorted(swaps.items(), reverse=True):
        if not block and start > 0 and end < len(lines) and not lines[start - 1].strip() and not lines[end].strip():
            end += 1  # a removed entry takes its blank line with it
        lines[start:end] = block
    if append:
        while lines and lines[-1] == "":
            lines.pop()
        for block in append:
            lines += ["", *block]
        lines.append("")
    return "\n".join(lines).encode("utf-8"), []


def po_path_of(locale: str) -> str:
    return f"locales/{locale}/LC_MESSAGES/messages.po"


def rebase(base: Mapping[str, bytes], ours: Mapping[str, bytes],
           theirs: Mapping[str, bytes]) -> tuple[Content, list[Conflict]]:
    """The changes ``ours`` made against ``base`` (its parent), applied onto ``theirs`` (the live content):
    entry by entry in a language's .po, file by file for the English in messages/. An entry (or English file)
    changed on both sides, differently, is a :class:`Conflict`; with any conflict nothing is applied."""
    out: Content = dict(theirs)
    conflicts: list[Conflict] = []
    for path in sorted(set(base) | set(ours) | set(theirs)):
        mine, before, now = ours.get(path), base.get(path), theirs.get(path)
        if mine in (before, now):
            continue
        if now == before:
            if mine is None:
                out.pop(path, None)
            else:
                out[path] = mine
            continue
        if path.startswith("locales/") and path.endswith("/messages.po") and mine is not None and now is not None:
            merged, found = _rebase_po(path.split("/")[1], before, mine, now)
            out[path] = merged
            conflicts += found
            continue
        conflicts.append(Conflict(SOURCE_LOCALE, path, "changed", ""))
    return out, conflicts


# --- the stored history ------------------------------------------------------------------------------


def live(session: Session) -> CatalogRevision | None:
    return session.scalar(select(CatalogRevision).where(CatalogRevision.draft.is_(False))
                          .order_by(CatalogRevision.id.desc()).limit(1))


def live_id(engine: Engine) -> int | None:
    """The live revision's number (None: the database has none yet, the files are served)."""
    with engine.connect() as conn:
        return conn.scalar(select(func.max(CatalogRevision.id)).where(CatalogRevision.draft.is_(False)))


def ensure_first(session: Session, repository: Content) -> CatalogRevision:
    """The live revision; when the database has none, the files in the repository become revision 1."""
    current = live(session)
    if current is not None:
        return current
    first = CatalogRevision(parent_id=None, created_by="repository", note="the files in the repository",
                            kind="repository", draft=False, digest=digest(repository), content=pack(repository),
                            changes=json.dumps({}), created_at=utcnow())
    session.add(first)
    session.flush()
    return first


@dataclass(frozen=True)
class Published:
    revision: CatalogRevision
    changes: dict[str, dict[str, list[str]]]
    unreviewed_again: tuple[str, ...] = ()  # "locale key" of entries changed without a review (reviews.py)


def store(session: Session, content: Content, *, by: str, note: str, kind: str, repository: Content,
          draft: bool = False, report: Report | None = None) -> Published:
    """Check ``content`` (unless ``report`` is its check already) and store it as a new revision (live unless
    ``draft``); commits. Refuses content with errors (:class:`PublishError`, nothing stored) and content
    identical to the live revision."""
    if not by.strip():
        raise PublishError("say who you are with --by NAME")
    report = report or check_content(content)
    if report.errors:
        raise PublishError(f"refused: {len(report.errors)} error(s) (listed above); the live catalog keeps serving")
    parent = ensure_first(session, repository)
    from .reviews import enforce

    content, marked = enforce(session, unpack(parent.content), content)
    if not draft and parent.digest == digest(content):
        session.commit()
        raise PublishError(f"nothing to publish: this is the live revision #{parent.id} already")
    changed = changes(unpack(parent.content), content)
    rev = CatalogRevision(parent_id=parent.id, created_by=by.strip()[:120], note=note, kind=kind, draft=draft,
                          digest=digest(content), content=pack(content), changes=json.dumps(changed),
                          created_at=utcnow())
    session.add(rev)
    session.commit()
    return Published(rev, changed, tuple(marked))


def live_content(session: Session, repository: Content) -> tuple[int | None, Content]:
    """The live revision's number and content; the repository's files when the database has none."""
    current = live(session)
    return (current.id, unpack(current.content)) if current is not None else (None, dict(repository))


def history(session: Session, limit: int = 50) -> list[CatalogRevision]:
    return list(session.scalars(select(CatalogRevision).order_by(CatalogRevision.id.desc()).limit(limit)))


def get(session: Session, number: int) -> CatalogRevision | None:
    return session.get(CatalogRevision, number)


# --- every process follows the live revision ----------------------------------------------------------


def build_revision(content: Content, serve_unreviewed: bool,
                   repository: Content | Callable[[], Content] | None = None, number: int | None = None) -> Catalog:
    """The catalog of a stored revision, or :class:`PublishError` if it cannot be served as it is.

    A revision stored before a code update that added a text lacks that text: with ``repository`` (the files
    deployed with the code), those texts are served from them, in every language they have, and a warning is
    logged, until a revision with them is published; without, the revision is refused."""
    try:
        catalog, _files, problems = build(content, serve_unreviewed=serve_unreviewed)
    except (SourceError, ValueError, KeyError) as exc:
        raise PublishError(f"the English source does not load: {exc}") from exc
    errors = [p for p in problems if p.severity == "error"] + list(catalog.errors)
    if errors:
        raise PublishError(f"{len(errors)} error(s), first: {errors[0]}")
    missing = missing_code_texts(catalog.source)
    if missing:
        files = repository() if callable(repository) else repository
        if files is None:
            raise PublishError(f"its English lacks texts the service sends: {', '.join(missing)}")
        try:
            deployed, _files, _problems = build(files, serve_unreviewed=serve_unreviewed)
        except (SourceError, ValueError, KeyError) as exc:
            raise PublishError(f"its English lacks {', '.join(missing)} and the repository's does not load") from exc
        lacking = [ctx for ctx in missing if ctx not in deployed.texts[SOURCE_LOCALE]]
        if lacking:
            raise PublishError(f"its English lacks texts the service sends, and so do the repository's files: "
                               f"{', '.join(lacking)}")
        texts = {locale: dict(by_ctx) for locale, by_ctx in catalog.texts.items()}
        for locale, by_ctx in deployed.texts.items():
            for ctx in missing:
                if ctx in by_ctx and locale in texts:
                    texts[locale][ctx] = by_ctx[ctx]
        catalog = replace(catalog, texts=MappingProxyType({k: MappingProxyType(v) for k, v in texts.items()}))
        log.warning("catalog revision #%s lacks texts this version of the code sends (%s): they are served from "
                    "the repository's files; publish a revision with them (assistant catalog check lists them)",
                    number, ", ".join(missing), extra={"event": "catalog.code_texts", "revision": number})
    return catalog


class CatalogWatcher:
    """Keeps one process's :class:`CatalogStore` on the live revision."""

    def __init__(self, store: CatalogStore, engine: Engine, *, serve_unreviewed: bool = True,
                 poll_seconds: float = POLL_SECONDS, repository: Callable[[], Content] | None = None) -> None:
        self.store = store
        self.repository = repository  # the files deployed with the code: texts a revision from before lacks
        self.engine = engine
        self.serve_unreviewed = serve_unreviewed
        self.poll_seconds = poll_seconds
        self.revision: int | None = None  # the revision being served; None: the repository's files
        self._refused: int | None = None  # the last revision that failed to load (not retried)
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def poll(self, startup: bool = False) -> bool:
        """Look once; swap in a newer live revision. True when the catalog changed. ``startup``: the process's
        first look, logged at DEBUG (a command line tool's output is not a server's log)."""
        try:
            newest = live_id(self.engine)
        except SQLAlchemyError:
            return False  # no table yet, or the database is away: keep serving what we have
        if newest is None or newest == self.revision or newest == self._refused:
            return False
        with self._lock:  # one build at a time (the thread, and a first synchronous look)
            if newest == self.revision:
                return False
            try:
                with Session(self.engine) as session:
                    row = session.get(CatalogRevision, newest)
                    data = row.content if row is not None else None
                if data is None:
                    return False
                catalog = build_revision(unpack(data), self.serve_unreviewed, self.repository, newest)
            except SQLAlchemyError:
                return False
            except Exception as exc:  # a broken revision must never take the worker down
                self._refused = newest
                log.error("catalog revision #%s cannot be loaded; still serving %s: %s", newest,
                          f"revision #{self.revision}" if self.revision else "the repository's files",
                          str(exc)[:300], extra={"event": "catalog.refused", "revision": newest})
                return False
            self.store.swap(catalog)
            old, self.revision = self.revision, newest
        log.log(logging.DEBUG if startup else logging.INFO, "catalog revision #%s is live here (was %s)", newest,
                old or "the files", extra={"event": "catalog.swapped", "revision": newest})
        return True


    def ensure_started(self) -> None:
        """Start the thread in this process (again after a fork: threads do not survive one). Cheap when it
        runs already: called before every request."""
        if self._pid == os.getpid() or self.poll_seconds <= 0:
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=_watch, args=(weakref.ref(self), self._stop, self.poll_seconds),
                                            name="catalog-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _watch(ref: weakref.ReferenceType[CatalogWatcher], stop: threading.Event, seconds: float) -> None:
    """The watcher's thread. It holds the watcher weakly: an app that is gone (tests make many) stops it."""
    while not stop.wait(seconds):
        watcher = ref()
        if watcher is None:
            return
        try:
            watcher.poll()
        except Exception:  # pragma: no cover - the thread must outlive anything
            log.exception("catalog watcher pass failed")
        del watcher


def init_app(app: Flask) -> None:
    """Follow the live revision in this process: a first synchronous look (a restarted worker serves the live
    revision from its first text), then the thread, started lazily (after gunicorn's fork)."""
    assistant = app.extensions["assistant"]
    settings = app.config["SETTINGS"]
    watcher = CatalogWatcher(assistant.store, app.extensions["read_engine"],
                             serve_unreviewed=settings.serve_unreviewed,
                             poll_seconds=float(app.config.get("CATALOG_POLL_SECONDS")
                                                or os.environ.get("CATALOG_POLL_SECONDS") or POLL_SECONDS),
                             repository=lambda: repository_content(app))
    app.extensions["catalog_watcher"] = watcher
    watcher.poll(startup=True)
    if watcher.poll_seconds > 0:  # 0: no watching (bench/publish.py measures what watching costs)
        app.before_request(watcher.ensure_started)


def repository_content(app: Flask) -> Content:
    settings = app.config["SETTINGS"]
    return read_dirs(settings.messages_dir, settings.locales_dir)


def wait_for(watcher: CatalogWatcher, revision: int, timeout: float = 10.0) -> bool:
    """For tests and the bench: True once ``watcher`` serves ``revision``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watcher.revision == revision:
            return True
        time.sleep(0.05)
    return False
