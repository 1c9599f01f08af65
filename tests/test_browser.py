"""The phone simulator in a real browser (Playwright, Debian's Chromium), served on loopback with a real
SQLite database: what a newcomer or a coordinator demoing the product sees and does.

Screenshots at phone and desktop size go to docs/screenshots/ (linked from the README). Without
Chromium these tests are skipped, unless REQUIRE_BROWSER=1 (CI), where a missing browser fails them.
"""

from __future__ import annotations

import re
import threading
import zlib

import pytest

from assistant import create_app
from assistant.db import upgrade

from .conftest import CARE_TEAM, SHOTS

PHONE_SIZE, DESKTOP_SIZE = {"width": 390, "height": 844}, {"width": 1280, "height": 800}
ALERTS = "+16175550201"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app as `make run` serves it (threaded development server), on a free loopback port."""
    from werkzeug.serving import make_server

    folder = tmp_path_factory.mktemp("browser")
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{folder / 'assistant.db'}",
                      "SPOOL_PATH": str(folder / "spool.db"), "CARE_TEAM_PHONE": CARE_TEAM,
                      "ALERT_NUMBERS": ALERTS})
    upgrade(app.config["DATABASE_URL"])
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    app.extensions["recorder"].close()


@pytest.fixture
def page(browser, server, request):
    """A fresh page at desktop size, on a number of its own (the test's name), with console errors kept."""
    context = browser.new_context(viewport=DESKTOP_SIZE)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    number = "+1555010" + f"{zlib.crc32(request.node.name.encode()) % 10000:04d}"  # the same on every run
    page.goto(f"{server}/?from={number.replace('+', '%2B')}")
    yield page
    context.close()


def send(page, text: str) -> None:
    """Type ``text`` and press Enter, then wait for its answer (a reply bubble or a note)."""
    before = page.locator("#log .them:not(.typing), #log .note").count()
    page.locator("#text").fill(text)
    page.locator("#text").press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#log .them:not(.typing), #log .note').length > n", arg=before)


def last_reply(page):
    return page.locator("#log .them:not(.typing)").last


def contrast(page, selector: str) -> float:
    """WCAG contrast ratio of the text colour of ``selector`` against its background."""
    return page.evaluate("""sel => {
        const el = document.querySelector(sel), style = getComputedStyle(el);
        const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        let bg = el, color = 'rgba(0, 0, 0, 0)';
        while (bg && (color = getComputedStyle(bg).backgroundColor) === 'rgba(0, 0, 0, 0)') bg = bg.parentElement;
        const [a, b] = [lum(style.color), lum(color)].sort((x, y) => y - x);
        return (a + 0.05) / (b + 0.05);
    }""", selector)


def test_a_conversation_as_a_caregiver_sees_it(page):
    page.screenshot(path=str(SHOTS / "desktop-first-screen.png"))
    send(page, "MENU")
    menu = last_reply(page)
    # A reply looks like a reply: a bubble with the phone's own colours, not a greyed note.
    assert menu.text_content().startswith("The assistant replied: Reply with a number")
    assert page.locator("#log .note").count() == 0
    assert menu.evaluate("e => getComputedStyle(e).fontStyle") == "normal"
    assert contrast(page, "#log .them:not(.typing)") >= 4.5
    assert contrast(page, "#log .me") >= 4.5
    meta = page.locator("#log .meta").last.inner_text()
    assert "MENU command" in meta and re.search(r"\d texts?, standard characters", meta)
    assert "GSM-7" not in meta  # the technical term is on hover
    assert "GSM-7" in page.locator("#log .meta .size").last.get_attribute("title")

    send(page, "5")
    assert "monoclonal" in last_reply(page).inner_text().lower() or "mab" in last_reply(page).inner_text().lower()

    send(page, "LANG")
    assert "Español" in last_reply(page).inner_text()
    send(page, "2")
    assert last_reply(page).get_attribute("lang") == "es"

    # An Arabic escalation: right to left, the care-team number whole and in order.
    send(page, "ابني عنده حمى")
    reply = last_reply(page)
    assert reply.get_attribute("dir") == "rtl" and reply.get_attribute("lang") == "ar"
    assert reply.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert reply.evaluate("e => getComputedStyle(e).textAlign") in ("right", "start")
    number = reply.locator(".num", has_text="555-0142")
    order = number.evaluate("""e => {
        const node = [...e.childNodes].find(n => n.nodeType === 3), text = node.textContent;
        const x = i => { const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                         return r.getBoundingClientRect().left; };
        return ['+', '617', '555', '0142'].map(part => x(text.indexOf(part)));
    }""")
    assert order == sorted(order), "the number must read +1 617-555-0142 left to right inside the Arabic text"
    meta = page.locator("#log .meta").last.inner_text()
    assert "Call now" in meta and "Arabic" in meta and ALERTS in meta
    page.screenshot(path=str(SHOTS / "desktop-arabic-escalation.png"))

    # STOP: nothing is sent, and the page says so in a note, not a reply bubble.
    replies = page.locator("#log .them:not(.typing)").count()
    send(page, "STOP")
    assert page.locator("#log .them:not(.typing)").count() == replies
    assert "Nothing is sent" in page.locator("#log .note").last.inner_text()
    send(page, "hello?")
    assert "opted out" in page.locator("#log .note").last.inner_text()
    send(page, "START")
    assert last_reply(page).get_attribute("lang") == "es"  # back, in their language
    assert page.errors == []


def test_start_over_forgets_the_language_and_the_opt_out(page):
    send(page, "LANG")
    send(page, "2")
    send(page, "STOP")
    page.get_by_role("button", name="Start over").click()
    page.wait_for_selector("#intro")
    assert page.locator("#log .msg").count() == 0
    send(page, "HELP")
    reply = last_reply(page)
    assert reply.get_attribute("lang") == "en" and "Text a word like FEVER" in reply.inner_text()


def test_keyboard_only(page):
    assert page.evaluate("document.activeElement.id") == "text"  # ready to type on load
    page.keyboard.type("MENU")
    page.keyboard.press("Enter")
    page.wait_for_selector("#log .them:not(.typing)")
    assert page.evaluate("document.activeElement.id") == "text"
    page.keyboard.type("FEVR")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Send"
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#log .them:not(.typing)').length === 2")
    assert page.evaluate("document.activeElement.id") == "text"  # back in the box for the next text
    assert "CALL YOUR CARE TEAM NOW" in last_reply(page).inner_text()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "log"  # scrollable with the arrow keys
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "from"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Start over"
    page.keyboard.press("Enter")
    page.wait_for_selector("#intro")
    # The first screen's examples are buttons too, after the box, Send and the conversation.
    for _ in range(3):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "MENU"


def test_sending_shows_a_pending_reply_and_keeps_replies_in_order(page):
    held = []

    def hold_the_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)  # a slow first answer

    page.route("**/simulator/send", hold_the_first)
    page.locator("#text").fill("MENU")
    page.locator("#text").press("Enter")
    page.locator("#text").fill("HELP")
    page.locator("#text").press("Enter")
    page.wait_for_selector("#log .typing")
    assert page.locator("#log .typing").get_attribute("role") == "status"
    assert page.locator("#log .them:not(.typing)").count() == 0
    held[0].continue_()
    page.wait_for_function("document.querySelectorAll('#log .them:not(.typing)').length === 2")
    texts = page.locator("#log .them:not(.typing)").all_text_contents()
    assert "Reply with a number" in texts[0] and "Text a word like FEVER" in texts[1]
    assert page.locator("#log .me").all_text_contents() == ["You sent: MENU", "You sent: HELP"]
    assert page.locator("#log .typing").count() == 0


def test_screen_readers_hear_who_said_what(page):
    log = page.get_by_role("log", name="Conversation with the assistant")
    assert log.get_attribute("aria-live") == "polite"
    send(page, "fiebre")
    assert page.locator("#log .me").text_content() == "You sent: fiebre"
    reply = last_reply(page)
    assert reply.text_content().startswith("The assistant replied: LLAME YA")
    assert reply.locator(".sr").get_attribute("lang") == "en"


def test_accessibility_check_finds_nothing_serious(page):
    from axe_playwright_python.sync_playwright import Axe

    for text in ("MENU", "عنده حمى", "发烧", "he is not breathing", "STOP"):
        send(page, text)
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in serious]


def test_phone_size_first_screen_names_the_product_and_what_to_try(browser, server):
    context = browser.new_context(viewport=PHONE_SIZE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{server}/?from=%2B15550100444")
    assert page.get_by_role("heading", level=1).inner_text() == "Caregiver Assistant"
    first = page.locator("#intro button").first
    box = first.bounding_box()
    assert box and box["y"] + box["height"] <= PHONE_SIZE["height"], "the examples are on the first screen"
    send_box = page.locator("#text").bounding_box()
    assert send_box and send_box["y"] + send_box["height"] <= PHONE_SIZE["height"], "so is the message box"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    page.screenshot(path=str(SHOTS / "phone-first-screen.png"))
    first.tap()
    page.wait_for_selector("#log .them:not(.typing)")
    send(page, "ابني عنده حمى")
    page.screenshot(path=str(SHOTS / "phone-arabic-escalation.png"))
    context.close()


def test_without_javascript_the_form_posts_and_shows_the_reply(browser, server):
    context = browser.new_context(viewport=DESKTOP_SIZE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server}/?from=%2B15550100555")
    page.locator("#text").fill("MENU")
    page.locator("#text").press("Enter")
    page.wait_for_load_state()
    assert "Reply with a number" in page.locator("#log .them").last.inner_text()
    page.locator("#text").fill("9")
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state()
    bubbles = page.locator("#log .msg").all_inner_texts()
    assert len(bubbles) == 4 and "Fever" in page.locator("#log .meta").last.inner_text()
    assert page.get_by_role("button", name="FEVER").count() == 0  # the examples are gone once talking
    page.get_by_role("button", name="Start over").click()
    page.wait_for_load_state()
    assert page.locator("#log .msg").count() == 0 and page.locator("#intro").count() == 1
    page.get_by_role("button", name="fiebre").click()
    page.wait_for_load_state()
    assert page.locator("#log .them").last.get_attribute("lang") == "es"
    context.close()


def test_call_mode_shows_what_the_caller_hears_and_where_the_call_goes(page):
    page.get_by_role("button", name="Call", exact=True).click()
    assert page.get_by_role("button", name="Call", exact=True).get_attribute("aria-pressed") == "true"
    page.get_by_role("button", name="Call the hospital").click()
    # A caller without a language: the keypad language menu, each language in its own voice.
    page.wait_for_selector("#callcontrols .key")
    said = page.locator("#calllog .said")
    voices = said.locator(".voice").all_inner_texts()
    assert any("es-US" in v for v in voices) and any("Polly" in v or "Google" in v for v in voices)
    assert page.locator("#calllog .said[lang='es-US']").count() >= 1
    page.locator("#callcontrols .key", has_text="2").first.click()  # Español
    page.wait_for_selector("#callcontrols input")
    box = page.locator("#callcontrols input")
    assert "es-US" in box.get_attribute("placeholder")
    box.fill("mi hijo tiene fiebre")
    box.press("Enter")
    page.wait_for_selector("#calllog .transfer")
    assert "+16175550142" in page.locator("#calllog .transfer").inner_text()  # CARE_TEAM, dialable
    page.get_by_role("button", name="Nobody answers").click()
    page.wait_for_selector("text=The call ends.")
    spoken = " ".join(said.all_inner_texts())
    assert "6, 1, 7" in spoken or "6 1 7" in spoken  # the number said digit by digit
    page.screenshot(path=str(SHOTS / "desktop-call-mode.png"))
    assert page.errors == []
