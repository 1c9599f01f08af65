"""The coordinators' web page with Flask's client: every route for every role, and the refusals (no
session, wrong role, missing or wrong CSRF token, too many sign-in attempts)."""

from __future__ import annotations

import re

import pytest
from lxml import html
from sqlalchemy import select

from assistant import create_app
from assistant.accounts import MAX_FAILURES_ACCOUNT, create_user
from assistant.db import get_session
from assistant.models import Acknowledgement, AuditEntry, Escalation, User

from .conftest import CARE_TEAM, ROOT, close_app, text_sms

PASSWORD = "correct horse battery"
ROUTES = {  # path -> the roles that may open it
    "/admin/": {"admin", "coordinator", "reviewer"},
    "/admin/preview": {"admin", "coordinator", "reviewer"},
    "/admin/escalations": {"admin", "coordinator"},
    "/admin/catalog": {"admin", "coordinator", "reviewer"},
    "/admin/catalog/topic/fever": {"admin", "coordinator", "reviewer"},
    "/admin/upload": {"admin", "coordinator"},
    "/admin/unanswered": {"admin", "coordinator"},
    "/admin/users": {"admin"},
    "/admin/audit": {"admin"},
}


@pytest.fixture
def admin_app(sms_app):
    sms_app.config.update(PASSWORD_HASH_METHOD="pbkdf2:sha256:1000", WTF_CSRF_ENABLED=True, SECRET_KEY="t" * 40)
    sms_app.secret_key = "t" * 40
    with sms_app.app_context():
        db = get_session()
        create_user(db, "ada@example.org", PASSWORD, "admin")
        create_user(db, "cora@example.org", PASSWORD, "coordinator")
        create_user(db, "rev@example.org", PASSWORD, "reviewer", ["es"])
        db.commit()
    return sms_app


def token(client, path="/admin/sign-in") -> str:
    page = html.fromstring(client.get(path).data)
    return page.xpath("//input[@name='csrf_token']/@value")[0]


def sign_in(client, email: str, password: str = PASSWORD, **headers):
    return client.post("/admin/sign-in", data={"email": email, "password": password,
                                               "csrf_token": token(client)}, **headers)


def signed_in(app, role: str):
    client = app.test_client()
    email = {"admin": "ada@example.org", "coordinator": "cora@example.org", "reviewer": "rev@example.org"}[role]
    assert sign_in(client, email).status_code == 302
    return client


@pytest.mark.parametrize("path", list(ROUTES))
def test_nothing_without_a_session(admin_app, path):
    response = admin_app.test_client().get(path)
    assert response.status_code == 302 and "/admin/sign-in" in response.headers["Location"]


@pytest.mark.parametrize("role", ["admin", "coordinator", "reviewer"])
def test_each_role_sees_its_pages_and_is_refused_the_others(admin_app, role):
    client = signed_in(admin_app, role)
    for path, roles in ROUTES.items():
        status = client.get(path).status_code
        assert status == (200 if role in roles else 403), (role, path, status)
    nav = html.fromstring(client.get("/admin/").data).xpath("//nav[@aria-label='Pages']//a/text()")
    assert ("Escalations" in nav) == (role != "reviewer") and ("Users" in nav) == (role == "admin")


def test_sign_in_with_a_wrong_password_says_so(admin_app):
    response = sign_in(admin_app.test_client(), "ada@example.org", "wrong password!!")
    assert response.status_code == 401 and b"Wrong email or password." in response.data


def test_too_many_attempts_lock_the_account_with_a_clear_message(admin_app):
    client = admin_app.test_client()
    for _ in range(MAX_FAILURES_ACCOUNT):
        assert sign_in(client, "cora@example.org", "not the password").status_code == 401
    locked = sign_in(client, "cora@example.org")  # even the right password, for now
    assert locked.status_code == 429 and b"Too many failed sign-ins. Wait 15 minutes" in locked.data
    assert sign_in(admin_app.test_client(), "ada@example.org").status_code == 302  # other accounts: fine


def test_too_many_attempts_from_one_address(admin_app):
    client = admin_app.test_client()
    for i in range(20):
        sign_in(client, f"nobody{i}@example.org", "x" * 12)
    assert sign_in(client, "ada@example.org").status_code == 429
    other = admin_app.test_client()
    assert sign_in(other, "ada@example.org", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 302


def test_attempts_are_counted_in_redis_when_it_is_set(admin_app):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(socket_timeout=0.5).ping()
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")
    from assistant.accounts import Throttle

    admin_app.extensions["throttle"] = throttle = Throttle("redis://127.0.0.1:6379/15")
    throttle.redis.flushdb()
    client = admin_app.test_client()
    for _ in range(MAX_FAILURES_ACCOUNT):
        sign_in(client, "cora@example.org", "not the password")
    assert int(throttle.redis.get("signin:account:cora@example.org")) == MAX_FAILURES_ACCOUNT
    assert sign_in(client, "cora@example.org").status_code == 429
    throttle.redis.flushdb()


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_forms_need_their_csrf_token(admin_app, csrf):
    data = {"email": "ada@example.org", "password": PASSWORD}
    if csrf:
        data["csrf_token"] = csrf
    response = admin_app.test_client().post("/admin/sign-in", data=data)
    assert response.status_code == 400 and b"The form expired" in response.data
    client = signed_in(admin_app, "coordinator")
    text_sms(client, "my son has a fever")
    escalation_id = _first_escalation(admin_app)
    refused = client.post(f"/admin/escalations/{escalation_id}/acknowledge", data={"note": "x", **(
        {"csrf_token": csrf} if csrf else {})})
    assert refused.status_code == 400
    with admin_app.app_context():
        assert get_session().get(Acknowledgement, escalation_id) is None


def test_the_twilio_webhook_needs_no_csrf_token(admin_app):
    response = text_sms(admin_app.test_client(), "MENU")
    assert response.status_code == 200 and b"<Message>" in response.data


def _first_escalation(app) -> int:
    with app.app_context():
        return get_session().scalar(select(Escalation.id).order_by(Escalation.id))


def test_a_coordinator_acknowledges_an_escalation_with_a_note(admin_app):
    client = signed_in(admin_app, "coordinator")
    text_sms(client, "my son has a fever of 39", sender="+16175550188")
    page = html.fromstring(client.get("/admin/escalations").data)
    article = page.xpath("//article")[0]
    assert "+16175550188" in article.text_content() and "Call now" in article.text_content()
    assert "my son has a fever of 39" in article.xpath(".//blockquote/text()")[0]
    assert re.search(r"\+16175550001: pending", article.text_content())  # alert delivery state
    escalation_id = _first_escalation(admin_app)
    done = client.post(f"/admin/escalations/{escalation_id}/acknowledge",
                       data={"note": "called back, going to ER", "csrf_token": token(client, "/admin/escalations")})
    assert done.status_code == 302
    assert html.fromstring(client.get("/admin/escalations").data).xpath("//article") == []  # no longer open
    acknowledged = client.get("/admin/escalations?state=acknowledged").data.decode()
    assert "Acknowledged by cora@example.org" in acknowledged and "called back, going to ER" in acknowledged
    with admin_app.app_context():
        entry = get_session().scalar(select(AuditEntry).where(AuditEntry.action == "escalation.acknowledge"))
        assert entry.actor == "cora@example.org" and entry.target == f"escalation #{escalation_id}"
        assert "ER" not in entry.detail  # the note stays with the escalation, not in the log


def test_the_overview_counts_by_level_and_language(admin_app):
    client = signed_in(admin_app, "reviewer")
    text_sms(client, "MENU")
    text_sms(client, "fiebre", sender="+16175550177")
    page = html.fromstring(client.get("/admin/").data)
    assert page.xpath("//svg[@role='img']")  # drawn on the server
    legend = " ".join(page.xpath("//figcaption//text()"))
    assert "Call now: 1" in legend and "Other reply: 1" in legend
    rows = [" ".join(r.xpath(".//td/text()")) for r in page.xpath("//table//tbody/tr")]
    assert any("Español" in r and "1" in r for r in rows)
    assert "1 open" in page.text_content().replace("\n", " ")


def test_preview_shows_the_exact_reply(admin_app):
    client = signed_in(admin_app, "reviewer")
    page = client.post("/admin/preview", data={"text": "tiene fiebre", "locale": "es",
                                              "csrf_token": token(client, "/admin/preview")})
    doc = html.fromstring(page.data)
    bubble = doc.xpath("//p[@class='bubble']")[0]
    assert bubble.get("lang") == "es" and bubble.text_content().startswith("LLAME YA")
    assert CARE_TEAM in bubble.text_content() and "call_now" in doc.text_content()


def test_an_admin_creates_and_deactivates_accounts(admin_app):
    client = signed_in(admin_app, "admin")
    csrf = token(client, "/admin/users")
    client.post("/admin/users", data={"email": "New@Example.org", "role": "reviewer", "locales": "fr,ar",
                                      "password": "twelve chars!", "csrf_token": csrf})
    bad = client.post("/admin/users", data={"email": "x@example.org", "role": "reviewer", "locales": "",
                                            "password": "twelve chars!", "csrf_token": csrf}, follow_redirects=True)
    assert b"a reviewer needs the languages they review" in bad.data
    new = signed_in_as(admin_app, "new@example.org", "twelve chars!")
    assert new.get("/admin/preview").status_code == 200
    with admin_app.app_context():
        user_id = get_session().scalar(select(User.id).where(User.email == "new@example.org"))
    client.post("/admin/users", data={"action": "deactivate", "id": user_id, "csrf_token": csrf})
    assert new.get("/admin/preview").status_code == 302  # signed out at once
    audit = client.get("/admin/audit").data.decode()
    assert "user.create" in audit and "user.deactivate" in audit


def signed_in_as(app, email, password):
    client = app.test_client()
    assert sign_in(client, email, password).status_code == 302
    return client


def test_sign_out_ends_every_copy_of_the_session(admin_app):
    client = signed_in(admin_app, "admin")
    copied = admin_app.test_client()
    cookie = client.get_cookie("session")
    copied.set_cookie("session", cookie.value)
    assert copied.get("/admin/").status_code == 200
    client.post("/admin/sign-out", data={"csrf_token": token(client, "/admin/")})
    assert client.get("/admin/").status_code == 302 and copied.get("/admin/").status_code == 302


def test_sign_in_never_sends_a_coordinator_elsewhere(admin_app):
    client = admin_app.test_client()
    response = client.post("/admin/sign-in?next=https://evil.example/admin",
                           data={"email": "ada@example.org", "password": PASSWORD, "csrf_token": token(client)})
    assert response.headers["Location"] == "/admin/"


def test_production_cookies_and_secret(database_url, tmp_path):
    config = {"DATABASE_URL": database_url, "ASSISTANT_ENV": "production", "TWILIO_AUTH_TOKEN": "5f" * 16,
              "PUBLIC_BASE_URL": "https://example.org", "CARE_TEAM_PHONE": "+16175550142",
              "ALERT_NUMBERS": "+16175550100", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
              "TWILIO_FROM_NUMBER": "+16175550000", "SPOOL_PATH": str(tmp_path / "spool.db")}
    from assistant import ConfigurationError

    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app(config)
    app = create_app({**config, "SECRET_KEY": "k" * 48})
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_create_user_reads_the_password_from_standard_input(admin_app):
    runner = admin_app.test_cli_runner()
    result = runner.invoke(args=["admin", "create-user", "Cli@Example.org", "--role", "coordinator"],
                           input="a long enough password\n")
    assert result.exit_code == 0 and "created cli@example.org (coordinator)" in result.output
    short = runner.invoke(args=["admin", "create-user", "b@example.org", "--role", "admin"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    with admin_app.app_context():
        user = get_session().scalar(select(User).where(User.email == "cli@example.org"))
        assert user.password_hash.startswith("pbkdf2:") and "a long enough" not in user.password_hash


def test_unanswered_texts_grouped_by_language_and_wording(admin_app):
    client = signed_in(admin_app, "coordinator")
    for n, body in enumerate(["where do i park at the hospital", "where to park at the hospital?",
                              "Where do I park at the hospital", "what is the wifi password",
                              "donde me estaciono en el hospital", "MENU", "my son has a fever"]):
        text_sms(client, body, sender=f"+1617555020{n}")
    admin_app.extensions["recorder"].flush()
    doc = html.fromstring(client.get("/admin/unanswered").data)
    english = doc.xpath("//section[h2[starts-with(., 'English')]]//tbody/tr")
    assert [row.xpath("./td[1]/text()")[0] for row in english] == ["3", "1"]
    assert "park at the hospital" in english[0].text_content().lower()
    spanish = doc.xpath("//section[h2[starts-with(., 'Spanish')]]//tbody/tr")
    assert len(spanish) == 1 and "estaciono" in spanish[0].text_content()
    assert "fever" not in doc.text_content() and "MENU" not in doc.xpath("string(//main)")
    assert signed_in(admin_app, "reviewer").get("/admin/unanswered").status_code == 403


# -- catalog pages ----------------------------------------------------------------------------------------

ES_PO = ROOT / "locales" / "es" / "LC_MESSAGES" / "messages.po"


def test_the_catalog_page_shows_coverage_and_each_topic_in_every_language(admin_app):
    client = signed_in(admin_app, "reviewer")
    doc = html.fromstring(client.get("/admin/catalog").data)
    rows = doc.xpath("//table[1]/tbody/tr")
    assert len(rows) == 12 and rows[1].xpath("string(./th)").startswith("Spanish")
    topic = html.fromstring(client.get("/admin/catalog/topic/fever").data)
    cells = topic.xpath("//tbody/tr")
    assert len(cells) == 36  # title, keywords and answer, 12 languages
    keywords = [r.xpath("string(./td[@lang])") for r in cells
                if r.xpath("string(./td[1])").startswith("fever:keywords")]
    assert len(keywords) == 12 and "fiebre" in " ".join(keywords)
    arabic = topic.xpath("//tbody/tr/td[@lang='ar']")[0]
    assert arabic.get("dir") == "rtl"
    assert re.search(r"\d texts?, (GSM-7|UCS-2)", topic.text_content())


def test_a_reviewer_marks_reviewed_in_their_languages_only(admin_app):
    client = signed_in(admin_app, "reviewer")  # reviews Spanish
    page = html.fromstring(client.get("/admin/catalog/topic/fever").data)
    buttons = page.xpath("//form[contains(@action,'/admin/catalog/review')]//input[@name='locale']/@value")
    assert set(buttons) == {"es"}  # only their language is offered
    csrf = page.xpath("//input[@name='csrf_token']/@value")[0]
    done = client.post("/admin/catalog/review", data={"locale": "es", "key": "topic:fever:title", "csrf_token": csrf,
                                                      "back": "/admin/catalog/topic/fever"}, follow_redirects=True)
    assert b"marked reviewed" in done.data
    refused = client.post("/admin/catalog/review", data={"locale": "fr", "key": "topic:fever:title",
                                                         "csrf_token": csrf})
    assert refused.status_code == 403
    admin_app.extensions["catalog_watcher"].poll()
    entry = admin_app.extensions["assistant"].store.current.texts["es"]["topic:fever:title"]
    assert entry.reviewed
    with admin_app.app_context():
        audit = get_session().scalar(select(AuditEntry).where(AuditEntry.action == "catalog.review"))
        assert audit.actor == "rev@example.org" and audit.target == "es topic:fever:title"


def _upload(client, data: bytes, name: str, locale: str = "es"):
    from io import BytesIO

    return client.post("/admin/upload", data={"file": (BytesIO(data), name), "locale": locale, "note": "test",
                                              "csrf_token": token(client, "/admin/upload")},
                       content_type="multipart/form-data")


def test_upload_a_broken_catalog_is_refused_with_its_line_then_publish_and_restore(admin_app):
    client = signed_in(admin_app, "coordinator")
    good = ES_PO.read_text("utf-8")
    old_help = admin_app.extensions["assistant"].store.current.text("es", "text:help")
    new_help = "AYUDA: escriba FIEBRE o MENU. No es para emergencias: llame al {emergency}. Equipo: {care_team}."
    changed = good.replace(old_help.replace('"', '\\"'), new_help, 1)
    assert changed != good
    broken = changed.replace(f'msgstr "{new_help}"', f'msgstr "{new_help}', 1)
    refused = _upload(client, broken.encode(), "messages.po")
    assert refused.status_code == 422
    report = html.fromstring(refused.data)
    problems = report.xpath("//ul[@class='problems']/li/text()")
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if text.startswith(f'msgstr "{new_help}'))
    assert any(f"messages.po:{line}" in p and "closing quote" in p for p in problems), problems

    stored = _upload(client, changed.encode(), "messages.po")
    assert stored.status_code == 200
    draft = int(re.search(r"Draft revision #(\d+)", stored.data.decode()).group(1))
    # The draft answers in the preview before it is published; the live content does not change.
    preview = client.post("/admin/preview", data={"text": "AYUDA", "locale": "es", "revision": str(draft),
                                                  "csrf_token": token(client, "/admin/preview")})
    assert "AYUDA: escriba FIEBRE o MENU" in html.fromstring(preview.data).xpath("string(//p[@class='bubble'])")
    assert admin_app.extensions["assistant"].reply("AYUDA").text.startswith(old_help[:20])

    client.post(f"/admin/revisions/{draft}/publish",
                data={"note": "new help", "csrf_token": token(client, "/admin/upload")})
    admin_app.extensions["catalog_watcher"].poll()
    assert admin_app.extensions["assistant"].reply("AYUDA").text.startswith("AYUDA: escriba FIEBRE")
    history = html.fromstring(client.get("/admin/upload").data)
    first = min(int(x) for x in history.xpath("//form[contains(@action,'/restore')]/@action")
                for x in re.findall(r"/revisions/(\d+)/restore", x))
    client.post(f"/admin/revisions/{first}/restore", data={"csrf_token": token(client, "/admin/upload")})
    admin_app.extensions["catalog_watcher"].poll()
    assert admin_app.extensions["assistant"].reply("AYUDA").text.startswith(old_help[:20])
    with admin_app.app_context():
        actions = get_session().scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        catalog_actions = [a for a in actions if a.startswith("catalog")]
        assert catalog_actions == ["catalog.import", "catalog.publish", "catalog.rollback"]


def test_upload_refuses_what_is_not_a_catalog(admin_app):
    client = signed_in(admin_app, "coordinator")
    for data, name, expected in [(b"", "x.po", b"choose a file"), (b"hello", "notes.txt", b"give a .po, .xlsx or .csv"),
                                 (b"PK\x03\x04 not really", "es.xlsx", b"es.xlsx")]:
        response = _upload(client, data, name)
        assert response.status_code == 422 and expected in response.data, name
    assert signed_in(admin_app, "reviewer").get("/admin/upload").status_code == 403


def test_a_keyword_from_an_unanswered_text_becomes_a_draft_then_an_answer(admin_app):
    client = signed_in(admin_app, "coordinator")
    text_sms(client, "le van a poner pembro mañana", sender="+16175550211")
    assert admin_app.extensions["assistant"].reply("le van a poner pembro mañana").topic is None
    admin_app.extensions["recorder"].flush()
    page = html.fromstring(client.get("/admin/unanswered").data)
    form = page.xpath("//form[contains(@action,'/admin/unanswered/keyword')]")[0]
    # Never the caregiver's whole text in the field: the words are offered, the coordinator picks or types one.
    assert form.xpath(".//input[@name='keyword']/@value") == []
    assert "pembro" in form.xpath(".//datalist/option/@value")
    response = client.post("/admin/unanswered/keyword", data={"locale": "es", "topic": "mab",
                                                              "keyword": "pembro",
                                                              "csrf_token": token(client, "/admin/unanswered")},
                           follow_redirects=True)
    draft = int(re.search(r"Draft revision #(\d+)", response.data.decode()).group(1))
    client.post(f"/admin/revisions/{draft}/publish", data={"csrf_token": token(client, "/admin/upload")})
    admin_app.extensions["catalog_watcher"].poll()
    reply = admin_app.extensions["assistant"].reply("le van a poner pembro mañana")
    assert (reply.topic, reply.locale) == ("mab", "es")


def test_a_call_counts_once_at_its_most_urgent_level(admin_app):
    client = signed_in(admin_app, "coordinator")
    caller = {"From": "+16175550222", "CallSid": "CA" + "1" * 32}
    steps = client.post("/simulator/voice", json={"path": "/voice", **caller}).json["steps"]
    action = next(s for s in steps if s["kind"] == "gather")["action"]
    steps = client.post("/simulator/voice", json={"path": action, "Digits": "1", **caller}).json["steps"]
    action = next(s for s in steps if s["kind"] == "gather")["action"]
    steps = client.post("/simulator/voice", json={"path": action, "SpeechResult": "my son has a fever", **caller}).json
    assert any(s["kind"] == "dial" for s in steps["steps"])
    text_sms(client, "MENU")
    admin_app.extensions["recorder"].flush()
    doc = html.fromstring(client.get("/admin/").data)
    cards = " ".join(doc.xpath("//p[@class='cards']//text()")).split()
    assert " ".join(cards).count("1 texts and 1 calls") == 1, cards
    legend = " ".join(doc.xpath("//figcaption//text()"))
    assert "Call now: 1" in legend and "Other reply: 1" in legend  # the call's steps are one call, at call_now


def test_the_command_line_is_audited_like_the_page(admin_app):
    result = admin_app.test_cli_runner().invoke(args=["catalog", "review", "es", "topic:chills:title",
                                                      "--by", "Dr. Ortiz"])
    assert result.exit_code == 0, result.output
    with admin_app.app_context():
        entry = get_session().scalar(select(AuditEntry).where(AuditEntry.action == "catalog.review"))
        assert (entry.actor, entry.target) == ("Dr. Ortiz", "es topic:chills:title")
    client = signed_in(admin_app, "admin")
    assert "Dr. Ortiz" in client.get("/admin/audit").data.decode()


def test_two_coordinators_acknowledging_at_once_keep_the_first(admin_app, monkeypatch):
    text_sms(admin_app.test_client(), "my son has a fever", sender="+16175550231")
    escalation_id = _first_escalation(admin_app)
    first, second = signed_in(admin_app, "coordinator"), signed_in(admin_app, "admin")
    csrf = token(second, "/admin/escalations")
    assert first.post(f"/admin/escalations/{escalation_id}/acknowledge",
                      data={"note": "called", "csrf_token": token(first, "/admin/escalations")}).status_code == 302
    # The second read "not acknowledged yet" just before the first committed (the race): its insert is refused.
    from sqlalchemy.orm import Session

    real_get = Session.get
    monkeypatch.setattr(Session, "get", lambda self, cls, key, *a, **k: None if cls is Acknowledgement
                        and not getattr(self, "_raced", False) and not setattr(self, "_raced", True)
                        else real_get(self, cls, key, *a, **k))
    response = second.post(f"/admin/escalations/{escalation_id}/acknowledge",
                           data={"note": "me too", "csrf_token": csrf}, follow_redirects=True)
    assert response.status_code == 200 and b"was acknowledged by cora@example.org already" in response.data
    monkeypatch.undo()
    with admin_app.app_context():
        ack = get_session().get(Acknowledgement, escalation_id)
        assert (ack.by, ack.note) == ("cora@example.org", "called")


def test_sign_in_limits_hold_when_redis_is_down(admin_app):
    from assistant.accounts import Throttle

    admin_app.extensions["throttle"] = Throttle("redis://127.0.0.1:1/0")  # nothing listens there
    client = admin_app.test_client()
    for _ in range(MAX_FAILURES_ACCOUNT):
        assert sign_in(client, "cora@example.org", "not the password").status_code == 401
    assert sign_in(client, "cora@example.org").status_code == 429  # counted in the database instead


# -- audit 12: what a coordinator sees when things go wrong, or an admin looks after the accounts -----------

def _audit_count(app) -> int:
    from sqlalchemy import func

    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(AuditEntry))


def _proxied_app(admin_app, tmp_path, hops):
    """A second app on admin_app's database (its accounts), with PROXY_HOPS set."""
    return create_app({"TESTING": True, "DATABASE_URL": admin_app.config["DATABASE_URL"],
                       "SPOOL_PATH": str(tmp_path / "spool-proxy.db"), "SECRET_KEY": "t" * 40,
                       "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "WTF_CSRF_ENABLED": True, "PROXY_HOPS": hops})


def _close(app) -> None:
    close_app(app)


def test_behind_a_proxy_each_coordinator_has_their_own_address_limit(admin_app, tmp_path):
    app = _proxied_app(admin_app, tmp_path, "1")
    try:
        proxy = {"REMOTE_ADDR": "10.0.0.2"}  # the router: every request comes from it
        attacker = app.test_client()
        for i in range(20):
            sign_in(attacker, f"nobody{i}@example.org", "x" * 12, environ_base=proxy,
                    headers={"X-Forwarded-For": "203.0.113.5"})
        assert sign_in(attacker, "ada@example.org", environ_base=proxy,
                       headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 429
        # Another coordinator behind the same router signs in; the attacker cannot pose as them by writing the
        # header himself (the router appends the address it saw: the last one is read).
        assert sign_in(app.test_client(), "cora@example.org", environ_base=proxy,
                       headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 302
        assert sign_in(app.test_client(), "cora@example.org", environ_base=proxy,
                       headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}).status_code == 429
    finally:
        _close(app)


def test_without_proxy_hops_the_header_is_not_trusted_and_the_log_says_to_set_it(admin_app, caplog):
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    client = admin_app.test_client()
    from assistant import admin

    admin._WARNED_PROXY.clear()
    for i in range(20):
        sign_in(client, f"nobody{i}@example.org", "x" * 12, environ_base=proxy,
                headers={"X-Forwarded-For": f"203.0.113.{i}"})
    assert sign_in(admin_app.test_client(), "ada@example.org", environ_base=proxy,
                   headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 429
    assert sum("PROXY_HOPS is 0" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("value", ["two", "-1", "1.5", "99"])
def test_a_wrong_proxy_setting_refuses_to_start(value):
    from assistant import ConfigurationError

    with pytest.raises(ConfigurationError, match="PROXY_HOPS must be a whole number"):
        create_app({"TESTING": True, "PROXY_HOPS": value})


def _user_id(app, email) -> int:
    with app.app_context():
        return get_session().scalar(select(User.id).where(User.email == email))


def _act(client, user_id, action, **form):
    return client.post(f"/admin/users/{user_id}", data={"action": action, **form,
                                                        "csrf_token": token(client, f"/admin/users/{user_id}")},
                       follow_redirects=True)


def test_an_admin_changes_role_and_languages_and_the_users_sessions_end(admin_app):
    admin = signed_in(admin_app, "admin")
    rev = signed_in(admin_app, "reviewer")
    rev_id = _user_id(admin_app, "rev@example.org")
    assert rev.get("/admin/escalations").status_code == 403
    page = html.fromstring(admin.get("/admin/users").data)
    link = page.xpath("//a[text()='rev@example.org']/@href")[0]
    assert link == f"/admin/users/{rev_id}"
    done = _act(admin, rev_id, "role", role="reviewer", locales=["es", "fr"])
    assert b"rev@example.org is now reviewer (es,fr); their sessions ended." in done.data
    assert rev.get("/admin/").status_code == 302  # signed out at once
    rev = signed_in(admin_app, "reviewer")
    offered = html.fromstring(rev.get("/admin/catalog/topic/fever").data).xpath(
        "//form[contains(@action,'/admin/catalog/review')]//input[@name='locale']/@value")
    assert set(offered) == {"es", "fr"}
    done = _act(admin, rev_id, "role", role="coordinator")
    assert b"rev@example.org is now coordinator; their sessions ended." in done.data
    rev = signed_in(admin_app, "reviewer")
    assert rev.get("/admin/escalations").status_code == 200
    bad = _act(admin, rev_id, "role", role="reviewer")  # a reviewer without languages
    assert b"a reviewer needs the languages they review" in bad.data
    audit = admin.get("/admin/audit").data.decode()
    assert "reviewer (es) -&gt; reviewer (es,fr)" in audit and "reviewer (es,fr) -&gt; coordinator" in audit


def test_an_admin_deactivates_and_reactivates_an_account(admin_app):
    admin = signed_in(admin_app, "admin")
    cora = signed_in(admin_app, "coordinator")
    cora_id = _user_id(admin_app, "cora@example.org")
    assert b"cora@example.org can no longer sign in" in _act(admin, cora_id, "deactivate").data
    assert cora.get("/admin/").status_code == 302
    assert sign_in(admin_app.test_client(), "cora@example.org").status_code == 401
    row = html.fromstring(admin.get("/admin/users").data).xpath("//tr[td/a[text()='cora@example.org']]")[0]
    assert "deactivated" in row.text_content()
    again = admin.post("/admin/users", data={"email": "cora@example.org", "role": "coordinator",
                                             "password": "twelve chars!", "csrf_token": token(admin, "/admin/users")},
                       follow_redirects=True)
    assert b"has an account already (deactivated: reactivate it" in again.data
    assert b"cora@example.org can sign in again." in _act(admin, cora_id, "activate").data
    assert sign_in(admin_app.test_client(), "cora@example.org").status_code == 302
    audit = admin.get("/admin/audit").data.decode()
    assert "user.deactivate" in audit and "user.reactivate" in audit


def test_an_admin_sets_a_password_and_the_user_chooses_their_own(admin_app):
    admin = signed_in(admin_app, "admin")
    cora = signed_in(admin_app, "coordinator")
    cora_id = _user_id(admin_app, "cora@example.org")
    short = _act(admin, cora_id, "password", password="short")
    assert b"at least 12 characters" in short.data
    done = _act(admin, cora_id, "password", password="temporary password 1")
    assert b"New password set for cora@example.org; their sessions ended." in done.data
    assert cora.get("/admin/").status_code == 302
    assert sign_in(admin_app.test_client(), "cora@example.org").status_code == 401  # the old one
    cora = admin_app.test_client()
    assert sign_in(cora, "cora@example.org", "temporary password 1").status_code == 302
    first = cora.get("/admin/escalations")
    assert first.status_code == 302 and first.headers["Location"] == "/admin/account"  # nothing else first
    page = cora.get("/admin/account")
    assert b"An admin set your password: choose your own to go on." in page.data
    csrf = token(cora, "/admin/account")
    wrong = cora.post("/admin/account", data={"current_password": "not it", "new_password": "my own password 2",
                                              "repeat_password": "my own password 2", "csrf_token": csrf})
    assert wrong.status_code == 422 and b"the current password is not right" in wrong.data
    done = cora.post("/admin/account", data={"current_password": "temporary password 1",
                                             "new_password": "my own password 2",
                                             "repeat_password": "my own password 2", "csrf_token": csrf},
                     follow_redirects=True)
    assert b"Your password is changed" in done.data
    assert cora.get("/admin/escalations").status_code == 200  # the session goes on
    assert sign_in(admin_app.test_client(), "cora@example.org", "my own password 2").status_code == 302
    with admin_app.app_context():
        details = get_session().scalars(select(AuditEntry.detail).where(AuditEntry.action == "user.password")).all()
    assert details == ["set by an admin; to be changed at the next sign-in", "changed by themselves"]
    assert not any("password 1" in d or "password 2" in d for d in details)


def test_a_user_changes_their_own_password_and_every_other_session_ends(admin_app):
    client = signed_in(admin_app, "reviewer")
    copied = admin_app.test_client()
    copied.set_cookie("session", client.get_cookie("session").value)
    csrf = token(client, "/admin/account")
    differ = client.post("/admin/account", data={"current_password": PASSWORD, "new_password": "a new password 3",
                                                  "repeat_password": "a new password 4", "csrf_token": csrf})
    assert differ.status_code == 422 and b"differ" in differ.data
    client.post("/admin/account", data={"current_password": PASSWORD, "new_password": "a new password 3",
                                        "repeat_password": "a new password 3", "csrf_token": csrf})
    assert client.get("/admin/").status_code == 200 and copied.get("/admin/").status_code == 302


def test_an_admin_lifts_a_sign_in_lock(admin_app):
    for _ in range(MAX_FAILURES_ACCOUNT):
        sign_in(admin_app.test_client(), "cora@example.org", "not the password")
    assert sign_in(admin_app.test_client(), "cora@example.org").status_code == 429
    admin = signed_in(admin_app, "admin")
    row = html.fromstring(admin.get("/admin/users").data).xpath("//tr[td/a[text()='cora@example.org']]")[0]
    assert f"locked: {MAX_FAILURES_ACCOUNT} failed sign-ins" in row.text_content()
    done = _act(admin, _user_id(admin_app, "cora@example.org"), "unlock")
    assert b"cora@example.org may sign in again now." in done.data
    assert sign_in(admin_app.test_client(), "cora@example.org").status_code == 302
    assert "user.unlock" in admin.get("/admin/audit").data.decode()


def test_account_forms_refuse_what_they_cannot_do_with_a_clear_page(admin_app):
    admin = signed_in(admin_app, "admin")
    csrf = token(admin, "/admin/users")
    for bad in ("abc", "", "999999", "1e3"):
        response = admin.post("/admin/users", data={"action": "deactivate", "id": bad, "csrf_token": csrf})
        assert response.status_code == 404 and b"There is no such account" in response.data, bad
    assert admin.get("/admin/users/999999").status_code == 404
    ada = _user_id(admin_app, "ada@example.org")
    own = _act(admin, ada, "deactivate")
    assert b"You cannot change your own role or access here" in own.data
    unknown = admin.post(f"/admin/users/{ada}", data={"action": "delete", "csrf_token": csrf})
    assert unknown.status_code == 400 and b"not one of this page" in unknown.data
    with admin_app.app_context():
        assert get_session().get(User, ada).active


def test_the_command_line_sets_passwords_unlocks_and_changes_accounts(admin_app):
    runner = admin_app.test_cli_runner()
    for _ in range(MAX_FAILURES_ACCOUNT):
        sign_in(admin_app.test_client(), "cora@example.org", "not the password")
    result = runner.invoke(args=["admin", "unlock", "cora@example.org"])
    assert result.exit_code == 0 and "cora@example.org may sign in again" in result.output
    result = runner.invoke(args=["admin", "set-password", "Cora@example.org"], input="a password from the cli\n")
    assert result.exit_code == 0 and "password set for cora@example.org" in result.output
    assert sign_in(admin_app.test_client(), "cora@example.org", "a password from the cli").status_code == 302
    assert runner.invoke(args=["admin", "set-password", "nobody@example.org"], input="a long password!\n"
                         ).output.strip().endswith("there is no account 'nobody@example.org'")
    result = runner.invoke(args=["admin", "set-role", "rev@example.org", "--role", "reviewer", "--locales", "es,ar"])
    assert result.exit_code == 0 and "rev@example.org is reviewer (es,ar)" in result.output
    last = runner.invoke(args=["admin", "set-role", "ada@example.org", "--role", "coordinator"])
    assert last.exit_code == 1 and "the last active admin" in last.output
    assert runner.invoke(args=["admin", "deactivate", "cora@example.org"]).exit_code == 0
    assert "deactivated" in runner.invoke(args=["admin", "users"]).output
    assert runner.invoke(args=["admin", "activate", "cora@example.org"]).exit_code == 0
    help_text = runner.invoke(args=["admin", "--help"]).output
    assert all(c in help_text for c in ("set-password", "unlock", "set-role", "activate", "deactivate", "users"))
    with admin_app.app_context():
        entries = get_session().scalars(select(AuditEntry).where(AuditEntry.action.like("user.%"))
                                        .order_by(AuditEntry.id)).all()
    actions = [e.action for e in entries if e.actor.startswith("command line") and e.action != "user.create"]
    assert actions == ["user.unlock", "user.password", "user.role", "user.deactivate", "user.reactivate"]


@pytest.mark.parametrize("email", ["<b>x</b>@x.org", "a b@x.org", "x@x", "x\n@x.org", "x@-x.org", "@x.org",
                                   "x@x..org", '"x"@x.org'])
def test_an_email_that_is_not_an_address_is_refused(admin_app, email):
    admin = signed_in(admin_app, "admin")
    response = admin.post("/admin/users", data={"email": email, "role": "coordinator", "password": "twelve chars!",
                                                "csrf_token": token(admin, "/admin/users")}, follow_redirects=True)
    assert b"is not an email address" in response.data
    with admin_app.app_context():
        assert get_session().scalar(select(User).where(User.email == email.strip().lower())) is None


def test_a_wrong_password_takes_as_long_for_an_unknown_account(admin_app, monkeypatch):
    from assistant import accounts

    checked = []
    real = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    assert sign_in(admin_app.test_client(), "nobody@example.org", "wrong password!!").status_code == 401
    assert sign_in(admin_app.test_client(), "ada@example.org", "wrong password!!").status_code == 401
    # The same work either way: one check against a hash made the way real ones are.
    assert len(checked) == 2 and all(h.startswith("pbkdf2:sha256:1000$") for h in checked)


def test_pages_refuse_frames_and_caching(admin_app):
    client = signed_in(admin_app, "coordinator")
    for path in ("/admin/sign-in", "/admin/escalations", "/admin/unanswered", "/admin/users"):
        headers = client.get(path).headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["Cache-Control"] == "no-store", path
    assert "X-Frame-Options" not in text_sms(admin_app.test_client(), "MENU").headers  # Twilio's, not a page


@pytest.mark.parametrize("target", ["/admin/%0d%0aSet-Cookie:x=1", "/admin/\r\nx", "/admin/../simulator",
                                    "/admin\\..\\x", "//evil.example/admin", "/admin/x#y"])
def test_sign_in_with_an_odd_next_goes_to_the_overview(admin_app, target):
    from urllib.parse import quote

    client = admin_app.test_client()
    response = client.post("/admin/sign-in?next=" + quote(target, safe="/%"),
                           data={"email": "ada@example.org", "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_sign_in_goes_back_to_the_page_asked_for(admin_app):
    client = admin_app.test_client()
    asked = client.get("/admin/escalations?state=all")
    assert asked.headers["Location"] == "/admin/sign-in?next=/admin/escalations"
    response = client.post("/admin/sign-in?next=/admin/escalations%3Fstate%3Dall",
                           data={"email": "cora@example.org", "password": PASSWORD, "csrf_token": token(client)})
    assert response.headers["Location"] == "/admin/escalations?state=all"


def test_acknowledging_again_says_who_did_it_first(admin_app):
    text_sms(admin_app.test_client(), "my son has a fever", sender="+16175550232")
    escalation_id = _first_escalation(admin_app)
    first, second = signed_in(admin_app, "coordinator"), signed_in(admin_app, "admin")
    csrf = token(second, "/admin/escalations")  # the second opened the page before the first acknowledged
    first.post(f"/admin/escalations/{escalation_id}/acknowledge",
               data={"note": "called", "csrf_token": token(first, "/admin/escalations")})
    response = second.post(f"/admin/escalations/{escalation_id}/acknowledge", data={"note": "me too",
                                                                                    "csrf_token": csrf},
                           follow_redirects=True)
    alert = html.fromstring(response.data).xpath("string(//p[@role='alert'])")
    assert f"Escalation #{escalation_id} was acknowledged by cora@example.org already" in alert
    assert "your note was not saved" in alert


def test_the_overview_counts_per_day_by_language(admin_app):
    from datetime import timedelta

    from assistant.models import InboundMessage, utcnow

    with admin_app.app_context():
        db = get_session()
        now = utcnow()
        for n, (days_ago, locale, level) in enumerate([(3, "fr", "info"), (3, "fr", "call_now"), (0, "es", "info"),
                                                       (0, "vi", "none"), (40, "fr", "info")]):
            db.add(InboundMessage(message_sid=f"SMold{n}", phone="", level=level, topic=None, locale=locale,
                                  reply="x", received_at=now - timedelta(days=days_ago), channel="sms"))
        db.commit()
        three_days_ago, today = (now - timedelta(days=3)).date().isoformat(), now.date().isoformat()
    doc = html.fromstring(signed_in(admin_app, "reviewer").get("/admin/").data)
    table = doc.xpath("//details[summary[contains(., 'day by day')]]//table")[0]
    columns = [th.text_content().strip() for th in table.xpath(".//thead//th")]
    assert columns[:2] == ["Day", "All"] and {"fr", "es", "vi"} <= set(columns)

    def row(day):
        cells = table.xpath(f".//tr[th='{day}']/td/text()")
        return dict(zip(columns[1:], cells, strict=True))

    assert row(three_days_ago)["fr"] == "2" and row(three_days_ago)["Call now"] == "1"
    assert row(three_days_ago)["es"] == "0" and row(today)["es"] == "1" and row(today)["vi"] == "1"
    per_language = {r.xpath("string(./td[1])"): r.xpath("string(./td[2])")
                    for r in doc.xpath("//table[@aria-labelledby='languages-title']/tbody/tr")}
    assert per_language["French (Français) (fr)"] == "2"  # the 40-day-old text is outside the 30 days
    spark = doc.xpath("//table[@aria-labelledby='languages-title']//tr[td[1][contains(., '(fr)')]]//rect/title/text()")
    assert spark == [f"{three_days_ago}: 2"]


# -- the catalog: every entry, and the upload's report ---------------------------------------------------

def test_a_reviewer_goes_through_every_entry_of_their_language_that_needs_work(admin_app):
    client = signed_in(admin_app, "reviewer")  # reviews Spanish
    catalog = html.fromstring(client.get("/admin/catalog").data)
    link = catalog.xpath("//table[1]//tr[th[starts-with(., 'Spanish')]]/td[3]/a/@href")[0]
    assert link == "/admin/catalog/entries?locale=es&state=needs_work"
    groups = catalog.xpath("//a[contains(@href, '/admin/catalog/entries?group=')]/text()")
    assert any(g.startswith("System replies") for g in groups) and any(g.startswith("Phone calls") for g in groups)
    page = html.fromstring(client.get(link).data)
    keys = page.xpath("//input[@name='keys']/@value")
    needs_work = {ctx for _loc, ctx in admin_app.extensions["assistant"].store.current.unreviewed("es")}
    assert set(keys) == needs_work and len(keys) == len(needs_work)
    assert {"text:fallback", "rule:breathing:phrases", "command:help", "voice:goodbye",
                                 "topic:fever:keywords"} <= set(keys)
    form = page.xpath("//form[@method='post'][.//input[@name='keys']]")[0]
    back = form.xpath(".//input[@name='back']/@value")[0]
    done = client.post("/admin/catalog/review", data={"locale": "es", "keys": ["text:fallback", "command:help"],
                                                      "back": back, "csrf_token": form.xpath(
                                                          ".//input[@name='csrf_token']/@value")[0]},
                       follow_redirects=True)
    assert b"2 entries in Spanish (Espa\xc3\xb1ol) marked reviewed" in done.data
    left = html.fromstring(client.get(link).data).xpath("//input[@name='keys']/@value")
    assert len(left) == len(keys) - 2 and "text:fallback" not in left
    one = client.post("/admin/catalog/review", data={"locale": "es", "key": "voice:goodbye", "back": back,
                                                     "csrf_token": token(client, link)}, follow_redirects=True)
    assert b"voice:goodbye in Spanish (Espa\xc3\xb1ol) marked reviewed" in one.data
    admin_app.extensions["catalog_watcher"].poll()
    texts = admin_app.extensions["assistant"].store.current.texts["es"]
    assert texts["text:fallback"].reviewed and texts["voice:goodbye"].reviewed
    french = html.fromstring(client.get("/admin/catalog/entries?locale=fr&state=needs_work").data)
    assert french.xpath("//input[@name='keys']") == [] and french.xpath("//button[@name='key']") == []
    group = html.fromstring(client.get("/admin/catalog/entries?group=voice").data)
    spoken = [k for k in admin_app.extensions["assistant"].store.current.texts["en"] if k.startswith("voice:")]
    assert len(group.xpath("//table[contains(@class,'entries')]/tbody/tr")) == len(spoken) * 12


def _es_po_with(key: str, text: str) -> bytes:
    from assistant.pofile import parse_po
    from assistant.spreadsheets import edit_po

    data = ES_PO.read_bytes()
    entry = parse_po(data).by_context()[key]
    return edit_po(data.decode("utf-8"), [(entry, key, text, False)], {}).encode("utf-8")


def test_an_upload_lists_its_warnings_each_with_its_entry(admin_app):
    client = signed_in(admin_app, "coordinator")
    changed = _es_po_with("topic:vaccine:summary", "")  # not translated: English is sent, a warning
    line = next(i for i, t in enumerate(changed.decode().splitlines(), 1) if t == 'msgctxt "topic:vaccine:summary"')
    response = _upload(client, changed, "messages.po")
    assert response.status_code == 200
    doc = html.fromstring(response.data)
    status = doc.xpath("string(//section[@aria-labelledby='draft-title']//p[@role='status'])")
    assert "2 warning(s) about Spanish (Español), 1 of them new with this file" in " ".join(status.split())
    warnings = [" ".join(li.text_content().split()) for li in doc.xpath("//ul[contains(@class,'warnings')]/li")]
    assert warnings[0] == (f"new: warning: [es] locales/es/LC_MESSAGES/messages.po:{line} (topic:vaccine:summary): "
                           "not translated; English is sent")
    unreviewed = doc.xpath("//ul[contains(@class,'warnings')]/li[2]//details//li/text()")
    before = {ctx for _loc, ctx in admin_app.extensions["assistant"].store.current.unreviewed("es")}
    assert len(unreviewed) == len(before - {"topic:vaccine:summary"})  # that one is now untranslated instead
    assert any(u.endswith("(text:fallback)") for u in unreviewed)


def test_an_unchanged_upload_says_so_and_stores_nothing(admin_app):
    from sqlalchemy import func

    from assistant.models import CatalogRevision

    client = signed_in(admin_app, "coordinator")
    before = _audit_count(admin_app)
    response = _upload(client, ES_PO.read_bytes(), "messages.po")
    assert response.status_code == 200
    status = html.fromstring(response.data).xpath("string(//section[@aria-labelledby='unchanged-title']//p)")
    assert status == ("messages.po: no changes. Every entry is the same as in the live Spanish (Español) catalog; "
                      "nothing was stored.")
    with admin_app.app_context():
        assert get_session().scalar(select(func.count()).select_from(CatalogRevision)) == 0
    assert _audit_count(admin_app) == before


# -- unanswered texts: keywords, never a caregiver's words -----------------------------------------------------

def test_an_english_unanswered_text_becomes_a_keyword(admin_app):
    client = signed_in(admin_app, "coordinator")
    text_sms(client, "can i get the hospital wifi password", sender="+16175550212")
    admin_app.extensions["recorder"].flush()
    page = html.fromstring(client.get("/admin/unanswered").data)
    row = page.xpath("//section[h2[starts-with(., 'English')]]//tbody/tr")[0]
    assert row.xpath(".//form[contains(@action,'/admin/unanswered/keyword')]//input[@name='locale']/@value") == ["en"]
    response = client.post("/admin/unanswered/keyword", data={"locale": "en", "topic": "resources",
                                                              "keyword": "wifi password",
                                                              "csrf_token": token(client, "/admin/unanswered")},
                           follow_redirects=True)
    status = html.fromstring(response.data).xpath("string(//p[@role='status'])")
    assert status.startswith("Draft revision #") and "'wifi password' added to resources in English" in status
    draft = int(re.search(r"Draft revision #(\d+)", response.data.decode()).group(1))
    history = html.fromstring(response.data).xpath(f"//tr[td/a[text()='#{draft}']]")[0].text_content()
    assert "en: 1 changed" in history  # the English catalog's entry, not "no entry changed"
    client.post(f"/admin/revisions/{draft}/publish", data={"csrf_token": token(client, "/admin/upload")})
    admin_app.extensions["catalog_watcher"].poll()
    reply = admin_app.extensions["assistant"].reply("can i get the hospital wifi password")
    assert (reply.topic, reply.locale) == ("resources", "en")
    catalog = admin_app.extensions["assistant"].store.current
    assert "wifi password" in catalog.lists["en"]["topic:resources:keywords"]
    assert all("wifi" not in " ".join(catalog.lists[loc].get("topic:resources:keywords", ()))
               for loc in ("es", "fr"))
    with admin_app.app_context():
        keyword = get_session().scalar(select(AuditEntry).where(AuditEntry.action == "catalog.keyword"))
        assert (keyword.actor, keyword.target) == ("cora@example.org", "en resources")
    again = client.post("/admin/unanswered/keyword", data={"locale": "en", "topic": "resources",
                                                           "keyword": "Wifi Password",
                                                           "csrf_token": token(client, "/admin/unanswered")},
                        follow_redirects=True)
    assert b"already a keyword of this topic in en" in again.data


@pytest.mark.parametrize("keyword, expected", [
    ("le van a poner pembro mañana", "that is a caregiver's whole text"),
    ("  Le van a poner PEMBRO mañana?! ", "that is a caregiver's whole text"),
    ("pembro 617 555 0211", "a keyword cannot hold a number"),
    ("le van a poner pembro el martes", "at most 5 words"),
])
def test_a_caregivers_text_or_number_never_becomes_a_keyword(admin_app, keyword, expected):
    client = signed_in(admin_app, "coordinator")
    text_sms(client, "le van a poner pembro mañana", sender="+16175550211")
    admin_app.extensions["recorder"].flush()
    before = _audit_count(admin_app)
    response = client.post("/admin/unanswered/keyword", data={"locale": "es", "topic": "mab", "keyword": keyword,
                                                              "csrf_token": token(client, "/admin/unanswered")},
                           follow_redirects=True)
    assert expected in html.fromstring(response.data).xpath("string(//p[@role='alert'])")
    assert _audit_count(admin_app) == before  # nothing stored, nothing in the audit log
    assert "pembro" not in admin_app.extensions["assistant"].store.current.lists["es"]["topic:mab:keywords"]


# -- refusals of every form: no session, the wrong role, no CSRF token ----------------------------------------

FORMS = [  # (path, form, a role that may not)
    ("/admin/revisions/1/publish", {"note": "x"}, "reviewer"),
    ("/admin/revisions/1/restore", {}, "reviewer"),
    ("/admin/unanswered/keyword", {"locale": "es", "topic": "mab", "keyword": "pembro"}, "reviewer"),
    ("/admin/escalations/1/acknowledge", {"note": "x"}, "reviewer"),
    ("/admin/users", {"email": "x@example.org", "role": "admin", "password": "twelve chars!"}, "coordinator"),
    ("/admin/users", {"action": "deactivate", "id": "1"}, "coordinator"),
    ("/admin/users/1", {"action": "deactivate"}, "coordinator"),
    ("/admin/catalog/review", {"locale": "fr", "key": "text:help"}, "reviewer"),  # not their language
    ("/admin/upload", {"locale": "es", "note": "x"}, "reviewer"),
    ("/admin/account", {"current_password": PASSWORD, "new_password": "x" * 12, "repeat_password": "x" * 12}, None),
]


@pytest.fixture
def with_an_escalation(admin_app):
    text_sms(admin_app.test_client(), "my son has a fever", sender="+16175550233")
    return admin_app


@pytest.mark.parametrize("path, form, role", FORMS)
def test_forms_are_refused_without_a_session_to_the_wrong_role_and_without_a_token(with_an_escalation, path, form,
                                                                                   role):
    app = with_an_escalation
    before = _audit_count(app)
    anonymous = app.test_client()
    response = anonymous.post(path, data={**form, "csrf_token": token(anonymous)})
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/sign-in?next=")
    if role:
        wrong = signed_in(app, role)
        response = wrong.post(path, data={**form, "csrf_token": token(wrong, "/admin/")})
        assert response.status_code == 403 and b"Not allowed" in response.data
    admin = signed_in(app, "admin")
    response = admin.post(path, data=form)
    assert response.status_code == 400 and b"The form expired" in response.data
    assert _audit_count(app) == before
    with app.app_context():
        assert get_session().get(Acknowledgement, 1) is None
        assert all(u.active for u in get_session().scalars(select(User)))


def test_a_revision_page_needs_a_session(admin_app):
    response = admin_app.test_client().get("/admin/revisions/1")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/sign-in?next=/admin/revisions/1"
    assert signed_in(admin_app, "reviewer").get("/admin/revisions/999").status_code == 404
