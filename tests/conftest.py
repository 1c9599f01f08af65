"""Fixtures in the Flask tutorial's style: ``app``, ``client``, ``runner``, plus the core's ``assistant``."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog as BabelCatalog
from babel.messages.pofile import read_po, write_po

from assistant import create_app
from assistant.catalog import CatalogStore, build_catalog, load_catalog
from assistant.config import Settings
from assistant.conversation import Assistant
from assistant.source import read_source

ROOT = Path(__file__).resolve().parent.parent
CARE_TEAM = "+1 617-555-0142"
LOCALES = ("en", "es", "zh_Hans", "vi", "ko", "tl", "ru", "ar", "ht", "pt", "fr", "so")


@pytest.fixture(scope="session")
def shipped_catalog():
    """The catalog as shipped in messages/ and locales/."""
    return load_catalog(ROOT / "messages", ROOT / "locales")


@pytest.fixture
def settings():
    return Settings(care_team_phone=CARE_TEAM, emergency_number="911")


@pytest.fixture
def assistant(shipped_catalog, settings):
    return Assistant(CatalogStore(shipped_catalog), settings)


@pytest.fixture
def app():
    return create_app({"TESTING": True, "CARE_TEAM_PHONE": CARE_TEAM})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def source():
    return read_source(ROOT / "messages")


def po_catalog(locale: str, entries: dict[str, str], *, fuzzy: bool = False, source=None) -> BabelCatalog:
    """A Babel catalog built in memory: msgctxt -> translation (msgids taken from the source)."""
    source = source or read_source(ROOT / "messages")
    msgids = {e.context: e.msgid for e in source.entries}
    cat = BabelCatalog(locale=locale)
    for ctx, string in entries.items():
        cat.add(msgids[ctx], string, context=ctx, flags=("fuzzy",) if fuzzy else ())
    # Round-trip through the .po format so the catalog is exactly what a file would give.
    buf = io.BytesIO()
    write_po(buf, cat)
    buf.seek(0)
    return read_po(buf, locale=locale)


def make_assistant(pos: dict, *, serve_unreviewed: bool = True, languages=None) -> Assistant:
    source = read_source(ROOT / "messages")
    if languages:
        from dataclasses import replace

        source = replace(source, languages=tuple(languages))
    catalog = build_catalog(source, pos, serve_unreviewed=serve_unreviewed)
    return Assistant(catalog, Settings(care_team_phone=CARE_TEAM))


# --- SMS layer: real databases, Twilio-signed requests, a local stand-in for Twilio's REST API ---------
import uuid  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from assistant.db import normalise_url, upgrade  # noqa: E402

from .twilio_fake import FakeTwilio  # noqa: E402

AUTH_TOKEN = "12345678901234567890123456789012"
ACCOUNT_SID = "AC" + "1" * 32
PUBLIC_URL = "https://assistant.example.org"
ALERTS = ("+16175550001", "+16175550002")
CAREGIVER = "+16175550123"
DATABASES = ["sqlite", "postgresql"]  # PostgreSQL only with TEST_DATABASE_URL; otherwise reported as skipped


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One SQLite file migrated to the head revision, copied for each test: running the migrations for
    every test cost about 0.4 s each."""
    path = tmp_path_factory.mktemp("template") / "test.db"
    upgrade(f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # everything in the file itself, nothing left in a -wal beside it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        url = f"sqlite:///{path}"
    else:
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            pytest.skip("PostgreSQL: set TEST_DATABASE_URL (README, Quick start)")
        fresh_schema(url)
    upgrade(url)  # at the head already: a check that costs one query
    return url


def fresh_schema(url: str) -> None:
    """An empty public schema in the PostgreSQL database at ``url``: a clean start for every test."""
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def fake_twilio():
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


def make_sms_app(database_url: str, fake_twilio, tmp_path, **extra):
    """The app as the SMS and voice tests run it (``extra``: more settings); close it with :func:`close_app`."""
    return create_app({
        "TESTING": True, "DATABASE_URL": database_url, "SPOOL_PATH": str(tmp_path / "spool.db"),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM_NUMBER": "+16175550000", "PUBLIC_BASE_URL": PUBLIC_URL,
        "ALERT_NUMBERS": ",".join(ALERTS), "CARE_TEAM_PHONE": CARE_TEAM, "TWILIO_API_BASE_URL": fake_twilio.url,
        **extra,
    })


def close_app(app) -> None:
    app.extensions["catalog_watcher"].stop()
    app.extensions["recorder"].close()
    app.extensions["engine"].dispose()
    app.extensions["read_engine"].dispose()


@pytest.fixture
def sms_app(database_url, fake_twilio, tmp_path):
    app = make_sms_app(database_url, fake_twilio, tmp_path)
    yield app
    close_app(app)


@pytest.fixture
def sms_client(sms_app):
    return sms_app.test_client()


def twilio_form(body: str, *, sid: str | None = None, sender: str = CAREGIVER, media: int = 0, **extra) -> dict:
    """The fields Twilio posts for an incoming SMS."""
    form = {
        "ToCountry": "US", "ToState": "MA", "SmsMessageSid": sid, "NumMedia": str(media), "ToCity": "BOSTON",
        "FromZip": "02115", "SmsSid": sid, "FromState": "MA", "SmsStatus": "received", "FromCity": "BOSTON",
        "Body": body, "FromCountry": "US", "To": "+16175550000", "ToZip": "02108", "NumSegments": "1",
        "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender, "ApiVersion": "2010-04-01",
    }
    for i in range(media):
        form[f"MediaUrl{i}"] = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/x/Media/{i}"
        form[f"MediaContentType{i}"] = "image/jpeg"
    form.update(extra)
    return form


def post_signed(client, path: str, form: dict, *, url: str | None = None, token: str = AUTH_TOKEN):
    """POST the way Twilio does: form-encoded, signed over the public URL and the sorted fields."""
    form = {k: v for k, v in form.items() if v is not None}
    signature = RequestValidator(token).compute_signature(url or PUBLIC_URL + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def text_sms(client, body: str, **kwargs):
    kwargs.setdefault("sid", "SM" + uuid.uuid4().hex)
    return post_signed(client, "/sms", twilio_form(body, **kwargs))


# Attributes every LogRecord has that only say when and where; a clock reading such as
# created=1796188739.74 must not pass for a logged temperature of "39.7".
_RECORD_CLOCK = {"created", "msecs", "relativeCreated", "thread", "threadName", "process", "processName",
                 "taskName", "lineno", "pathname", "filename", "module", "funcName", "name", "levelno"}


def logged_text(records) -> str:
    """Everything the log handlers could write, as the JSON lines and the records' own fields, minus the clock."""
    import json as _json

    from assistant.logs import JsonFormatter

    parts = []
    for record in records:
        line = _json.loads(JsonFormatter().format(record))
        line.pop("ts", None)
        parts.append(str(line))
        parts.append(record.getMessage())
        parts.append(str({k: v for k, v in vars(record).items() if k not in _RECORD_CLOCK}))
    return " ".join(parts)


# -- browser tests (Playwright driving Debian's Chromium) ---------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "screenshots"  # written by the browser tests; the README links them


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (make install)"
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    """Chromium, headless. Missing, the browser tests are skipped, unless REQUIRE_BROWSER=1 (CI): then they
    fail, so that CI never passes without them."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Without these, Chromium keeps trying to reach Google on a machine with no way out.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def serve(app):
    """``app`` served on a free loopback port by the threaded development server (what `make run` uses);
    returns (base URL, stop function)."""
    import threading

    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{httpd.server_port}", httpd.shutdown


def pytest_terminal_summary(terminalreporter):
    """Skipped tests summed up by reason, one line each (hundreds of PostgreSQL variants without
    TEST_DATABASE_URL would otherwise be a line each)."""
    from collections import Counter

    reasons = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section("skipped")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count} skipped: {reason}")
