"""The coordinators' pages in a real browser (Playwright, Debian's Chromium), served on loopback with a real
SQLite database. Screenshots of each page go to docs/screenshots/ (the README links them)."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from assistant import create_app
from assistant.accounts import create_user
from assistant.db import get_session, upgrade

from .conftest import CARE_TEAM, ROOT, SHOTS, serve

PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("admin")
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{folder / 'a.db'}",
                      "SPOOL_PATH": str(folder / "spool.db"), "CARE_TEAM_PHONE": CARE_TEAM,
                      "ALERT_NUMBERS": "+16175550201", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                      "SECRET_KEY": "b" * 40, "CATALOG_POLL_SECONDS": 0.2})
    upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        db = get_session()
        create_user(db, "cora@example.org", PASSWORD, "coordinator")
        create_user(db, "ada@example.org", PASSWORD, "admin")
        db.commit()
    url, stop = serve(app)
    yield url
    stop()
    app.extensions["recorder"].close()


def text(site: str, number: str, body: str) -> dict:
    request = urllib.request.Request(f"{site}/simulator/send", data=json.dumps({"from": number, "text": body}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def eventually(check, seconds: float = 20.0) -> bool:
    """True once ``check()`` is: a published revision reaches the serving worker within its poll and build."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def signed_in_page(browser, site: str, email: str):
    """A desktop-size page signed in as ``email`` through the sign-in form."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{site}/admin/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}/admin/")
    return context, page


@pytest.fixture
def page(browser, site):
    context, page = signed_in_page(browser, site, "cora@example.org")
    yield page
    context.close()


def test_sign_in_page(browser, site):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{site}/admin/escalations")
    assert page.url.endswith("/admin/sign-in?next=/admin/escalations")
    page.get_by_label("Email").fill("cora@example.org")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    page.screenshot(path=str(SHOTS / "admin-sign-in-phone.png"))
    context.close()


def test_a_coordinator_acknowledges_an_escalation(page, site):
    text(site, "+16175550301", "ابني عنده حمى")
    text(site, "+16175550302", "he is not breathing")
    page.goto(f"{site}/admin/escalations")
    articles = page.locator("article")
    assert articles.count() == 2
    newest = articles.first
    assert "Emergency" in newest.inner_text() and "+16175550302" in newest.inner_text()
    arabic = page.locator("article blockquote[lang='ar']")
    assert arabic.evaluate("e => getComputedStyle(e).direction") == "rtl"
    page.screenshot(path=str(SHOTS / "admin-escalations.png"), full_page=True)
    newest.get_by_label("Note (what was done)").fill("Called back; ambulance on the way")
    newest.get_by_role("button", name="Acknowledge").click()
    assert "acknowledged" in page.get_by_role("status").inner_text()
    assert page.locator("article").count() == 1
    page.get_by_role("link", name="Acknowledged").click()
    assert "Acknowledged by cora@example.org" in page.locator("article").first.inner_text()


def test_overview_and_preview(page, site):
    text(site, "+16175550303", "MENU")
    text(site, "+16175550304", "fiebre")
    page.goto(f"{site}/admin/")
    assert page.locator("svg[role='img'] rect").count() >= 1
    page.screenshot(path=str(SHOTS / "admin-overview.png"), full_page=True)
    page.get_by_role("link", name="Preview").click()
    page.get_by_label("The caregiver's text").fill("tiene fiebre de 39")
    page.get_by_label("Their language").select_option("es")
    page.get_by_role("button", name="Show the reply").click()
    bubble = page.locator("p.bubble")
    assert bubble.get_attribute("lang") == "es" and bubble.inner_text().startswith("LLAME YA")
    page.screenshot(path=str(SHOTS / "admin-preview.png"), full_page=True)


def test_the_pages_pass_an_accessibility_check(page, site):
    from axe_playwright_python.sync_playwright import Axe

    text(site, "+16175550305", "my daughter has chills")
    text(site, "+16175550308", "where do i park at the hospital")
    for path in ("/admin/", "/admin/escalations", "/admin/preview", "/admin/catalog", "/admin/catalog/topic/fever",
                 "/admin/catalog/entries?locale=es&state=needs_work", "/admin/catalog/entries?group=voice",
                 "/admin/upload", "/admin/unanswered", "/admin/account"):
        page.goto(f"{site}{path}")
        violations = Axe().run(page).response["violations"]
        serious = [(v["id"], v["help"]) for v in violations if v["impact"] in ("serious", "critical")]
        assert serious == [], (path, serious)


def test_upload_refused_with_its_line_then_fixed_published_previewed_and_restored(page, site, tmp_path):
    good = (ROOT / "locales" / "es" / "LC_MESSAGES" / "messages.po").read_text("utf-8")
    old = 'msgstr "Volverá a recibir mensajes.'
    assert old in good
    fixed = good.replace(old, 'msgstr "¡De vuelta! Volverá a recibir mensajes.', 1)
    line = next(i for i, text in enumerate(fixed.splitlines(), 1) if text.startswith('msgstr "¡De vuelta!'))
    broken = fixed.replace('msgstr "¡De vuelta! Volverá a recibir mensajes.', 'msgstr "¡De vuelta! \\q', 1)
    (tmp_path / "broken.po").write_text(broken, "utf-8")
    (tmp_path / "fixed.po").write_text(fixed, "utf-8")

    page.get_by_role("link", name="Upload").click()
    page.get_by_label("File").set_input_files(str(tmp_path / "broken.po"))
    page.get_by_label("Language (needed for a .po)").select_option("es")
    page.get_by_label("Note: what changed and why").fill("a warmer START")
    page.get_by_role("button", name="Check and keep as a draft").click()
    assert "Refused" in page.get_by_role("heading", level=2).first.inner_text()
    problems = page.locator("ul.problems li.error").all_inner_texts()
    assert any(f"messages.po:{line}" in p for p in problems), problems
    page.screenshot(path=str(SHOTS / "admin-upload-refused.png"), full_page=True)

    page.get_by_label("File").set_input_files(str(tmp_path / "fixed.po"))
    page.get_by_label("Language (needed for a .po)").select_option("es")
    page.get_by_role("button", name="Check and keep as a draft").click()
    heading = page.get_by_role("heading", name=re.compile(r"Draft revision #\d+")).inner_text()
    draft = heading.split("#")[1]
    page.get_by_role("link", name=f"Preview draft #{draft}").click()
    page.get_by_label("The caregiver's text").fill("START")
    page.get_by_label("Their language").select_option("es")
    page.get_by_role("button", name="Show the reply").click()
    assert page.locator("p.bubble").inner_text().startswith("¡De vuelta!")

    page.get_by_role("link", name="Upload").click()
    page.get_by_role("button", name=f"Publish #{draft}").click()
    assert "is live" in page.get_by_role("status").first.inner_text()
    page.screenshot(path=str(SHOTS / "admin-upload-history.png"), full_page=True)

    def live_start() -> str:
        page.goto(f"{site}/admin/preview")
        page.get_by_label("The caregiver's text").fill("START")
        page.get_by_label("Their language").select_option("es")
        page.get_by_role("button", name="Show the reply").click()
        return page.locator("p.bubble").inner_text()

    assert eventually(lambda: live_start().startswith("¡De vuelta!"))  # the worker's watcher picks it up
    page.goto(f"{site}/admin/upload")
    page.get_by_role("button", name=re.compile(r"Restore #\d+")).last.click()  # the oldest: the shipped files
    assert eventually(lambda: live_start().startswith("Volverá a recibir mensajes"))


def test_a_keyword_from_an_unanswered_text(page, site):
    text(site, "+16175550306", "le van a poner pembro mañana")
    page.get_by_role("link", name="Unanswered").click()
    row = page.locator("tr", has_text="pembro")
    page.screenshot(path=str(SHOTS / "admin-unanswered.png"), full_page=True)
    row.get_by_label("Keyword").fill("pembro")
    row.get_by_label("Topic").select_option("mab")
    row.get_by_role("button", name="Add as a draft").click()
    message = page.get_by_role("status").first.inner_text()
    draft = re.search(r"Draft revision #(\d+)", message).group(1)
    page.get_by_role("button", name=f"Publish #{draft}").click()
    assert eventually(lambda: text(site, "+16175550307", "le van a poner pembro mañana")["topic"] == "mab")


def test_an_admin_changes_an_account_with_the_keyboard(browser, site):
    from axe_playwright_python.sync_playwright import Axe

    context, page = signed_in_page(browser, site, "ada@example.org")
    page.goto(f"{site}/admin/users")
    page.get_by_label("Email").fill("rita@example.org")
    page.get_by_label("Role").select_option("reviewer")
    page.get_by_label("Spanish (Español) (es)").check()
    page.get_by_label("Password (at least 12 characters)").fill("a reviewer's password")
    page.get_by_role("button", name="Create the account").click()
    assert "Account created for rita@example.org." in page.get_by_role("status").inner_text()
    page.get_by_role("link", name="rita@example.org").click()
    assert page.get_by_role("heading", level=1).inner_text() == "rita@example.org"
    # Keyboard only: tick French and save the languages.
    page.get_by_label("French (Français) (fr)").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Save role and languages").focus()
    page.keyboard.press("Enter")
    assert "rita@example.org is now reviewer (es,fr)" in page.get_by_role("status").inner_text()
    for path in ("/admin/users", page.url.replace(site, "")):
        page.goto(f"{site}{path}")
        violations = Axe().run(page).response["violations"]
        assert [(v["id"], v["help"]) for v in violations if v["impact"] in ("serious", "critical")] == [], path
    page.screenshot(path=str(SHOTS / "admin-user.png"), full_page=True)
    page.get_by_role("button", name="Deactivate rita@example.org").click()
    assert "can no longer sign in" in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="Reactivate rita@example.org").is_visible()
    context.close()


def test_screenshots_of_the_catalog_users_and_audit_pages(browser, site):
    context, page = signed_in_page(browser, site, "ada@example.org")
    for path, name in (("/admin/catalog", "admin-catalog"), ("/admin/catalog/topic/fever", "admin-catalog-topic"),
                       ("/admin/catalog/entries?group=command&locale=es&state=needs_work", "admin-catalog-entries"),
                       ("/admin/users", "admin-users"), ("/admin/audit", "admin-audit"),
                       ("/admin/account", "admin-account")):
        page.goto(f"{site}{path}")
        assert page.get_by_role("heading", level=1).count() == 1
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    context.close()
