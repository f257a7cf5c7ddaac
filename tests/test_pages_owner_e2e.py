# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's pages in a real browser: my card (me card, keys, field sets per audience,
previews), who gets it (rules, states, send now) and my invites (link, QR code, revoke).

One server with the shipped defaults (policy ``ask``, discoverability ``contacts``,
nobody pre-authorised) is shared by the module; each test has users of its own.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from typing import Any, Iterator

import pytest
import requests
import segno

from tests.browser import Browser, browser  # noqa: F401  (the fixture)
from tests.server import Client, RadicaleServer, fixture, last_code, settled, wait_until
from tests.test_audiences_e2e import user

PAGES = "/.web/mecard"
USERS = {name: name + "-pw" for name in (
    "alice", "bob", "carol", "dave", "erin", "frank", "gina", "harry", "mallory", "nina", "olga",
    "paul", "quinn", "rita")}
EVIL = {"img": "<img src=x onerror=alert(1)>", "script": "<script>alert(2)</script>",
        "js": "javascript:alert(3)", "template": "{{7*7}}"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[RadicaleServer]:
    """The shipped defaults (RadicaleServer without loosened options), for every test here."""
    srv = RadicaleServer(tmp_path_factory.mktemp("owner-pages"), USERS).start()
    try:
        yield srv
    finally:
        srv.stop()


def vcard(uid: str, fn: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:" + uid, "FN:" + fn, *lines,
                        "END:VCARD", ""])


def signed_in(browser: Browser, server: RadicaleServer, name: str) -> Browser:
    browser.sign_in(name, USERS[name])
    return browser


def go(browser: Browser, server: RadicaleServer, page: str) -> None:
    browser.open(server.url + PAGES + page)
    browser.wait_for("nav.mecard-nav")


def reloads(browser: Browser, press: Any, accept_confirm: bool = False) -> None:
    """Press a button of a form the page script sends, and wait for the page it loads."""
    browser.press_and_wait(press, accept_confirm)


def modules_of(svg: str) -> list[list[bool]]:
    """The dark modules of a segno SVG (one path of horizontal runs), as a matrix."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))
    grid = [[False] * size for _ in range(size)]
    path = re.search(r'<path[^>]* stroke="#000"[^>]* d="([^"]+)"', svg).group(1)
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for column in range(int(x), int(x + float(a))):
                grid[int(y)][column] = True
            x += float(a)
    return grid


class Tags(HTMLParser):
    """What a page's HTML holds, read as a browser reads it (attribute values unescaped)."""

    def __init__(self) -> None:
        super().__init__()
        self.attributes: list[str] = []
        self.scripts: list[str] = []      # each <script>'s src ("" for an inline one)
        self.images: list[str] = []
        self.javascript_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.attributes += [name for name, _ in attrs]
        if tag == "script":
            self.scripts.append(values.get("src") or "")
        if tag == "img":
            self.images.append(values.get("src") or "")
        for name in ("href", "src", "action", "formaction"):
            if (values.get(name) or "").strip().lower().startswith("javascript:"):
                self.javascript_links.append(values[name] or "")


def no_markup_ran(browser: Browser) -> None:
    """No element came from card data, nothing ran, no script was refused."""
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        browser.driver.switch_to.alert  # noqa: B018  (raises when no alert is open)
    assert browser.all("img[src=x]") == []
    assert [s.get_attribute("src") for s in browser.all("script")] and all(
        s.get_attribute("src") for s in browser.all("script"))
    assert [a for a in browser.all("a[href]")
            if a.get_attribute("href").lower().startswith("javascript")] == []
    assert browser.console_errors() == []


# -- my card and who gets it ------------------------------------------------------------

def test_owner_picks_her_card_verifies_a_key_sets_family_fields_and_sends_now(
        shared, browser):
    alice = user(shared, "alice")
    assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code == 201
    assert alice.put("c-bob.vcf", fixture("alice-contact-bob.vcf")).status_code == 201
    # bob and carol keep a card with alice's number: they let her find them
    bob = user(shared, "bob", fixture("bob-me.vcf"))
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    carol = user(shared, "carol", fixture("carol-me.vcf"))
    assert carol.put("al.vcf", vcard("carols-alice", "Al", "TEL:+1 202 555 0101")
                     ).status_code == 201
    signed_in(browser, shared, "alice")

    # the me card, picked from her books
    go(browser, shared, "/card")
    assert "You have not chosen" in browser.text()
    choice = [r for r in browser.all("#choose-me-card input[name=path]")
              if r.get_attribute("value") == "/alice/contacts/alice.vcf"]
    assert len(choice) == 1 and "/alice/contacts/c-bob.vcf" in browser.text()
    choice[0].click()
    reloads(browser, browser.css("#choose-me-card button"))
    assert browser.css(".me-card-name").text == "Alice Archer"
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
    browser.screenshot("owner-card-chosen")

    # her number: a code by SMS, typed into the page
    def key_row() -> Any:
        return browser.css("tr.key[data-key='tel:+12025550101']")
    assert key_row().find_element("css selector", ".key-state").text == "not verified"
    reloads(browser, key_row().find_element("css selector", ".verify-key button"))
    assert key_row().find_element("css selector", ".key-state").text == "code sent"
    code = last_code(shared.sms_to("+12025550101"))
    wrong = key_row().find_element("css selector", ".confirm-key input[name=code]")
    wrong.send_keys("000000")
    key_row().find_element("css selector", ".confirm-key button").click()
    error = browser.wait_for("tr.key[data-key='tel:+12025550101'] .confirm-key .error")
    assert error.text  # shown where it happened, the page stays
    wrong.clear()
    wrong.send_keys(code)
    reloads(browser, key_row().find_element("css selector", ".confirm-key button"))
    assert key_row().find_element("css selector", ".key-state").text == "verified"

    # who gets it: the group found in her books, and carol by name
    go(browser, shared, "/recipients")
    from selenium.webdriver.support.ui import Select
    Select(browser.css("#add-group select")).select_by_value("group:family")
    reloads(browser, browser.css("#add-group button"))
    browser.css("#add-person input").send_keys("carol")
    reloads(browser, browser.css("#add-person button"))
    assert alice.api_ok("GET", "/me")["targets"] == ["group:family", "user:carol"]
    wait_until(lambda: {r["user"]: r["state"] for r in settled(alice)["recipients"]}
               == {"bob": "offered", "carol": "offered"}, 60, "offers to bob and carol")

    # family gets the home address and no e-mail; the preview shows it
    go(browser, shared, "/card")
    form = browser.css("form.audience[data-rule='group:family']")
    for box in form.find_elements("css selector", "input[name=fields]"):
        if box.is_selected() != (box.get_attribute("value") in ("FN", "N", "TEL", "ADR")):
            box.click()
    reloads(browser, form.find_element("css selector", "button"))
    preview = browser.css("article.preview[data-rule='group:family']")
    rows = preview.find_elements("css selector", "tbody tr")
    shown = [row.get_attribute("data-field") for row in rows]
    assert sorted(set(shown)) == ["ADR", "FN", "N", "TEL"]
    assert "a group before" in browser.text()  # the specificity rule is explained
    api_preview = alice.api_ok("GET", "/preview?rule=group:family")
    assert [(r.get_attribute("data-field"), r.get_attribute("data-value")) for r in rows] == [
        (line["field"], line["value"]) for line in api_preview["lines"]]
    # in words a person reads: "Address" and its parts, not "ADR" and semicolons
    address = [r.text for r in rows if r.get_attribute("data-field") == "ADR"]
    assert address and address[0].lower().startswith("address") and ";" not in address[0]
    browser.screenshot("owner-card")
    browser.driver.execute_script("arguments[0].scrollIntoView()", preview)
    browser.screenshot("owner-card-preview")

    # bob takes it as a new contact: his copy holds exactly the previewed lines
    answer = bob.api_ok("POST", "/offers/alice/accept", {"card": "new"})
    copy = bob.card(answer["card"].rsplit("/", 1)[1])
    lines = [ln for ln in copy.replace("\r\n ", "").splitlines()
             if ln.split(":", 1)[0].split(";", 1)[0] not in (
                 "BEGIN", "END", "VERSION", "UID", "REV", "PRODID")]
    assert sorted(ln.split(":", 1)[0].split(";", 1)[0] for ln in lines) == sorted(
        line["field"] for line in api_preview["lines"])
    for line in api_preview["lines"]:
        assert any(ln.endswith(":" + line["value"]) for ln in lines), (line, copy)
    assert "alice@example.org" not in copy and "1 Main St" in copy

    # the states, as the page shows them
    report = settled(alice)
    go(browser, shared, "/recipients")
    states = {row.get_attribute("data-user"): row.get_attribute("data-state")
              for row in browser.all("tr.recipient")}
    assert states == {"bob": "delivered", "carol": "offered"}
    assert "group:family (contact Bob)" in browser.text()
    browser.screenshot("owner-recipients")
    browser.driver.execute_script("arguments[0].scrollIntoView()", browser.css("#send-now"))
    browser.screenshot("owner-recipients-states")

    # send now to carol alone: her delivery is planned again, bob's is left alone
    before = {r["user"]: r["updated"] for r in report["recipients"]}
    token, _ = bob.sync()
    browser.css("tr.recipient[data-user=carol] input[name=recipients]").click()
    reloads(browser, browser.css("#send-chosen"))
    after = {r["user"]: r for r in settled(alice)["recipients"]}
    assert after["carol"]["updated"] != before["carol"]
    assert after["bob"]["updated"] == before["bob"]
    assert after["carol"]["state"] == "offered" and after["bob"]["state"] == "delivered"
    assert bob.sync(token)[1] == []
    # nobody ticked: the error is shown in the form, nothing is sent
    go(browser, shared, "/recipients")
    browser.css("#send-chosen").click()
    assert "choose at least one person" in browser.wait_for("#send-now .error").text
    # the two refusals asked for above are the only things the console reports
    assert [e for e in browser.console_errors() if "status of 400" not in e] == []


# -- invites ------------------------------------------------------------------------------

def test_owner_creates_an_invite_shows_its_qr_code_and_revokes_it(shared, browser):
    from selenium.webdriver.common.keys import Keys
    user(shared, "frank", vcard("frank-me", "Frank Fisher", "TEL:+1 202 555 0106"))
    gina, harry = user(shared, "gina"), user(shared, "harry")
    signed_in(browser, shared, "frank")
    go(browser, shared, "/invites")
    assert "You have made no invite yet" in browser.text()
    browser.css("#invite-create input[name=max_uses]").clear()
    browser.css("#invite-create input[name=max_uses]").send_keys("2")
    # with the keyboard: Enter in the form sends it
    browser.css("#invite-create input[name=label]").send_keys("for the conference", Keys.ENTER)
    image = browser.wait_for("#invite-qr")
    link = browser.css("#invite-link").get_attribute("value")
    assert re.fullmatch(re.escape(shared.url) + r"/\.web/mecard/invite/[A-Za-z0-9_-]{16,}",
                        link)
    src = image.get_attribute("src")
    assert src.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(src.split(",", 1)[1]).decode()
    assert "<script" not in svg and "href" not in svg
    # the code holds exactly the link: its modules are those of the link's QR code
    expected = [[bool(v) for v in row] for row in
                segno.make_qr(link, error="m").matrix_iter(scale=1, border=4)]
    assert modules_of(svg) == expected
    assert modules_of(svg) != [[bool(v) for v in row] for row in segno.make_qr(
        link + "x", error="m").matrix_iter(scale=1, border=4)]  # the check can tell
    browser.driver.execute_script("arguments[0].scrollIntoView()", browser.css("#invite-new"))
    browser.screenshot("owner-invites-new")

    # the token is shown this once: the list never holds it
    token = link.rsplit("/", 1)[1]
    go(browser, shared, "/invites")
    assert token not in browser.driver.page_source
    gina.api_ok("POST", "/invite/%s/accept" % token, {"card": "new"})
    go(browser, shared, "/invites")
    row = browser.css("tr.invite")
    assert row.get_attribute("data-state") == "active"
    assert "for the conference" in row.text and "gina" in row.text and "1 of 2" in row.text
    browser.screenshot("owner-invites")

    reloads(browser, row.find_element("css selector", "button"), accept_confirm=True)
    assert browser.css("tr.invite").get_attribute("data-state") == "revoked"
    # the landing refuses it now: neither its card nor accepting
    assert harry.api("GET", "/invite/%s" % token).status_code in (404, 410)
    assert harry.api("POST", "/invite/%s/accept" % token, {"card": "new"}
                     ).status_code in (404, 409, 410)
    landing = harry.http.get(link)
    assert landing.status_code != 200 and "Frank Fisher" not in landing.text
    # a revoked invite's QR code is not made any more
    assert shared.client("frank").api("POST", "/invites/qr", {"token": token}
                                      ).status_code == 404


def test_the_qr_call_encodes_only_my_own_open_invites(shared):
    nina = user(shared, "nina", vcard("nina-me", "Nina North", "TEL:+1 202 555 0109"))
    mallory = user(shared, "mallory")
    token = nina.api_ok("POST", "/invites", {})["token"]
    mine = nina.api_ok("POST", "/invites/qr", {"token": token})
    assert mine["url"].endswith("/.web/mecard/invite/" + token) and "<svg" in mine["svg"]
    unknown = mallory.api("POST", "/invites/qr", {"token": "A" * 32})
    others = mallory.api("POST", "/invites/qr", {"token": token})
    assert unknown.status_code == others.status_code == 404
    assert unknown.json() == others.json()  # another's token: the answer of an unknown one
    for bad in ({}, {"token": 7}, {"token": ""}, {"token": "x" * 500}, {"url": mine["url"]}):
        answer = nina.api("POST", "/invites/qr", bad)
        assert answer.status_code == 400 and answer.json()["error"], bad


# -- card data is text ------------------------------------------------------------------

def test_card_data_group_names_and_labels_show_as_inert_text(shared, browser):
    evil = EVIL["img"]
    dave = user(shared, "dave", vcard(
        "dave-me", evil, "N:%s;;;;" % EVIL["template"], "TEL:+1 202 555 0104",
        "NOTE:" + EVIL["script"], "ORG:" + EVIL["template"], "URL:" + EVIL["js"]))
    dave.api_ok("POST", "/shared-fields", {"fields": ["FN", "N", "TEL", "NOTE", "ORG", "URL"]})
    # a contact and a group of his own books with the same names, and an invite label
    assert dave.put("x.vcf", vcard("dave-x", EVIL["script"], "TEL:+1 202 555 0177",
                                   "CATEGORIES:" + evil.replace(",", ""),
                                   "NOTE:" + EVIL["img"], "URL:" + EVIL["js"])
                    ).status_code == 201
    dave.api_ok("POST", "/targets", {"targets": ["group:" + evil, "user:" + EVIL["template"]]})
    dave.api_ok("POST", "/invites", {"label": evil + EVIL["template"]})
    signed_in(browser, shared, "dave")
    for page in ("/card", "/recipients", "/invites", "/card?recipient=" + EVIL["template"]):
        go(browser, shared, page)
        no_markup_ran(browser)
        text = browser.text()
        assert evil in text and EVIL["template"] in text, page
    go(browser, shared, "/card")
    assert EVIL["script"] in browser.text() and EVIL["js"] in browser.text()
    go(browser, shared, "/recipients")
    assert "group:" + evil in browser.text()
    browser.screenshot("owner-recipients-hostile")
    # the raw pages: every such value escaped, no inline script, no handler attribute
    for page in ("/card", "/recipients", "/invites"):
        raw = requests.get(shared.url + PAGES + page, auth=("dave", USERS["dave"]), timeout=10)
        assert raw.status_code == 200
        assert "<img src=x" not in raw.text and "<script>alert" not in raw.text
        tags = Tags()
        tags.feed(raw.text)
        assert [a for a in tags.attributes if a.startswith("on")] == []
        assert tags.scripts and all(tags.scripts)  # each script is a file of ours
        assert "x" not in tags.images and not tags.javascript_links
        assert "'unsafe-inline'" not in raw.headers["Content-Security-Policy"]


# -- only my own data ---------------------------------------------------------------------

def test_another_user_sees_and_sends_nothing_of_anyone_else(shared, browser):
    erin = user(shared, "erin", vcard("erin-me", "Erin Evans", "TEL:+1 202 555 0105"))
    assert erin.put("c.vcf", vcard("erin-c", "Erins Friend Zed", "TEL:+1 202 555 0155",
                                   "CATEGORIES:Erins Club")).status_code == 201
    erin.api_ok("POST", "/targets", {"targets": ["group:Erins Club"]})
    erin.api_ok("POST", "/invites", {"label": "erins secret invite"})
    mallory = shared.client("mallory")
    mallory.login()
    mine = mallory.api_ok("GET", "/cards")["cards"]
    assert all(c["path"].startswith("/mallory/") for c in mine)
    assert "Erin" not in str(mine) and mallory.api_ok("GET", "/groups") == {"groups": []}
    assert [c["fn"] for c in erin.api_ok("GET", "/cards")["cards"]] == [
        "Erin Evans", "Erins Friend Zed"]  # positive control
    assert [g["name"] for g in erin.api_ok("GET", "/groups")["groups"]] == ["erins club"]

    signed_in(browser, shared, "mallory")
    for page in ("/card", "/recipients", "/invites"):
        go(browser, shared, page)
        assert "Erin" not in browser.text() and "erins" not in browser.text(), page
    browser.screenshot("owner-card-empty")

    # send now as mallory: his own card only (he has none), never erin's
    queued = erin.api_ok("GET", "/targets")
    for data in ({"recipients": "all"}, {"recipients": ["erin"]}):
        answer = mallory.api("POST", "/send", data)
        assert answer.status_code == 409 and "me card" in answer.json()["error"]
    assert erin.api_ok("GET", "/targets")["recipients"] == queued["recipients"]


def test_send_now_answers_alike_for_unknown_hidden_and_visible_names(shared):
    olga = user(shared, "olga", vcard("olga-me", "Olga Olsen", "N:Olsen;Olga;;;",
                                      "TEL:+1 202 555 0108"))
    paul = user(shared, "paul")  # keeps olga's number: she may find him
    assert paul.put("o.vcf", vcard("pauls-olga", "Olga", "TEL:+1 202 555 0108")
                    ).status_code == 201
    # mallory exists but never let olga find her; "nobody-here" is no user
    answers = [olga.api("POST", "/send", {"recipients": [name]})
               for name in ("mallory", "nobody-here", "paul")]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["recipients"] for a in answers] == [["mallory"], ["nobody-here"], ["paul"]]
    report = settled(olga)
    # only the one she may see got her card (offered: he is asked first)
    assert [(r["user"], r["state"], r["target"]) for r in report["recipients"]] == [
        ("paul", "offered", False)]
    assert "sent to them by name" in report["recipients"][0]["reason"]
    for bad in ({}, {"recipients": "everyone"}, {"recipients": []}, {"recipients": [1]},
                {"recipients": ["x" * 300]}, {"recipients": ["paul"] * 2000}):
        answer = olga.api("POST", "/send", bad)
        assert answer.status_code == 400 and answer.json()["error"], bad
    assert olga.api_ok("POST", "/send", {"recipients": "all"})["recipients"] == "all"


def test_the_bridge_sends_now_to_one_person_or_to_all(shared, monkeypatch):
    import io

    from bridge.cli import main
    quinn = user(shared, "quinn", vcard("quinn-me", "Quinn Quick", "N:Quick;Quinn;;;",
                                        "TEL:+1 202 555 0110"))
    rita = user(shared, "rita")  # keeps quinn's number: he may find her
    assert rita.put("q.vcf", vcard("ritas-quinn", "Q", "TEL:+1 202 555 0110")).status_code == 201
    monkeypatch.setenv("MECARD_URL", shared.url)
    monkeypatch.setenv("HOME", str(shared.root))  # no ~/.netrc or config of the developer's

    def bridge(who: str, *argv: str) -> tuple[int, str]:
        monkeypatch.setenv("MECARD_USER", who)
        monkeypatch.setenv("MECARD_PASSWORD", USERS[who])
        out = io.StringIO()
        return main(list(argv), out=out), out.getvalue()

    code, out = bridge("quinn", "send", "rita")
    assert code == 0 and out.startswith("Sent to rita")
    assert [(r["user"], r["state"]) for r in settled(quinn)["recipients"]] == [
        ("rita", "offered")]
    code, out = bridge("quinn", "send")
    assert code == 0 and out.startswith("Sent to all your targets.")
    # rita shares nothing: one line saying what to do, exit 1
    code, _ = bridge("rita", "send")
    assert code == 1
