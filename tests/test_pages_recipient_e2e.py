# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's pages in a real browser: updates, history with undo, settings, invites.

One server with the shipped defaults (policy ``ask``, discoverability ``contacts``, nobody
pre-authorised) for the module: each test uses recipients of its own, so that Alice's
offers to one of them say nothing about another.  Alice shares to each by a ``user:NAME``
rule; her number then waits for that recipient's answer as an offer.  Every answer is a
button press on a page; CardDAV and the API confirm what it did.
"""
from __future__ import annotations

import datetime
import http.server
import re
import threading
from typing import Iterator

import pytest
import requests

from tests.browser import Browser, browser  # noqa: F401  (the fixture)
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

PAGES = "/.web/mecard"
ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")
NUMBER = "+1 202 555 0101"
WORK = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-at-work\r\nFN:Alice at work\r\nEND:VCARD\r\n"
RECIPIENTS = ("dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "oscar", "walter",
              "peggy", "mallory", "trent", "victor", "sybil")
PEOPLE = {**USERS, **{name: name + "-pw" for name in RECIPIENTS}}


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[RadicaleServer]:
    """The shipped defaults, one server for the module (its tests use distinct users)."""
    server = RadicaleServer(tmp_path_factory.mktemp("pages-recipient"), PEOPLE).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def alice(srv) -> Client:
    """The owner: her me card designated, her number and e-mail verified."""
    return person(srv, "alice", "alice-me.vcf")


def offered(srv: RadicaleServer, owner: Client, name: str, card: str = ALLY) -> Client:
    """``name`` keeps a card for the owner; the owner shares with them: an offer waits."""
    recipient = person(srv, name)
    if card:
        assert recipient.put("ally.vcf", card).status_code == 201
    owner.api_ok("POST", "/targets", {"add": ["user:%s" % name]})
    settled(owner)
    wait_until(lambda: offers(recipient), what="the offer to %s" % name)
    return recipient


def offers(client: Client) -> list[dict]:
    return client.api_ok("GET", "/offers")["offers"]


def signed_in(browser: Browser, client: Client) -> Browser:
    browser.sign_in(client.user, PEOPLE[client.user])
    return browser


def page(browser: Browser, srv: RadicaleServer, path: str, ready: str = "main") -> None:
    browser.open(srv.url + PAGES + path)
    browser.wait_for(ready)


def press(browser: Browser, selector: str, then: str) -> None:
    """Press a button and wait until the (next) page says ``then``."""
    browser.css(selector).click()
    settle(browser, then)


def settle(browser: Browser, then: str) -> None:
    """Wait until the page, perhaps a new one, says ``then``."""
    from selenium.common.exceptions import (StaleElementReferenceException,
                                            WebDriverException)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser.driver, 15, ignored_exceptions=(
        StaleElementReferenceException, WebDriverException)
                  ).until(lambda d: then in d.find_element(By.TAG_NAME, "body").text)


def owner_with_card(srv: RadicaleServer, name: str, card: str) -> Client:
    """An owner whose me card is ``card``, its numbers and e-mails verified."""
    owner = person(srv, name)
    assert owner.put("%s.vcf" % name, card).status_code == 201
    owner.api_ok("POST", "/me-card", {"path": "/%s/contacts/%s.vcf" % (name, name)})
    owner.verify_me_card()
    return owner


def unlabelled(browser: Browser) -> list[str]:
    """Inputs and selects a person could not tell apart by their label."""
    return browser.driver.execute_script("""
        const out = [];
        for (const el of document.querySelectorAll("input, select, textarea")) {
          if (el.type === "hidden") continue;
          if (!el.labels || el.labels.length === 0) out.push(el.outerHTML);
        }
        return out;""")


# -- updates for me ------------------------------------------------------------------

def test_bob_sees_before_and_after_and_accepts_this_time_only(srv, alice, browser):
    bob = offered(srv, alice, "bob")
    assert offers(bob)[0]["owner_name"] == "Alice Archer"  # what the page shows is in the API
    signed_in(browser, bob)
    page(browser, srv, "/updates", "article.mecard-offer")
    text = browser.text()
    assert "Update from alice" in text and "Alice Archer" in text
    assert "alice@example.org — verified" in text and NUMBER + " — verified" in text
    assert "your card Ally" in text and "/bob/contacts/ally.vcf" in text
    row = browser.css("table.mecard-changes tbody tr").text
    assert "phone" in row.lower() and "nothing" in row and NUMBER in row
    assert unlabelled(browser) == []
    assert browser.console_errors() == []
    browser.screenshot("recipient-updates")
    page(browser, srv, "/updates/alice", "article.mecard-offer")
    assert unlabelled(browser) == []
    browser.screenshot("recipient-offer")
    # opening the pages (as a mail scanner following the link would) changed nothing
    assert NUMBER not in bob.card("ally.vcf") and len(offers(bob)) == 1

    press(browser, "button.mecard-accept-once", "No updates wait for you")
    assert NUMBER in bob.card("ally.vcf").replace("TEL;TYPE=CELL:", "")
    assert offers(bob) == []
    assert "alice" not in bob.api_ok("GET", "/policies")["policies"]  # this time only


def test_accepting_sends_the_change_shown_and_a_newer_one_is_refused_in_the_form(
        srv, browser):
    me = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:peggy\r\nFN:Peggy\r\nTEL:+1 202 555 0141\r\n"
          "EMAIL:peggy@example.org\r\nEND:VCARD\r\n")
    peggy = owner_with_card(srv, "peggy", me)
    # Erin knows Peggy's e-mail (so Peggy may reach her), not her number
    erin = offered(srv, peggy, "erin", card="BEGIN:VCARD\r\nVERSION:3.0\r\nUID:peg\r\n"
                   "FN:Peg\r\nEMAIL:peggy@example.org\r\nEND:VCARD\r\n")
    signed_in(browser, erin)
    page(browser, srv, "/updates/peggy", "article.mecard-offer")
    assert "your card Peg" in browser.text() and "+1 202 555 0141" in browser.text()
    # Peggy changes her number while Erin looks at the old one
    assert peggy.put("peggy.vcf", me.replace("0141", "0142")).status_code == 204
    settled(peggy)
    wait_until(lambda: "0142" in str(offers(erin)), what="the newer offer")
    browser.css("button.mecard-accept-always").click()
    error = browser.wait_for("form.mecard-accept .error")
    assert "changed since you looked" in error.text and error.get_attribute("role") == "alert"
    assert erin.api_ok("GET", "/links")["links"] == []
    # looking again shows the newer change, and accepting it from now on applies it
    page(browser, srv, "/updates/peggy", "article.mecard-offer")
    assert "+1 202 555 0142" in browser.text()
    press(browser, "button.mecard-accept-always", "No updates wait for you")
    copy = erin.card("ally.vcf")
    assert "0142" in copy and "0141" not in copy and "FN:Peg" in copy
    assert erin.api_ok("GET", "/policies")["policies"] == {"peggy": "auto"}


def test_postpone_until_a_chosen_time_and_a_past_time_is_refused_in_its_form(
        srv, alice, browser):
    dave = offered(srv, alice, "dave")
    signed_in(browser, dave)
    page(browser, srv, "/updates", "form.mecard-postpone")
    field = browser.css("form.mecard-postpone input[type=datetime-local]")
    browser.driver.execute_script("arguments[0].value = '2020-01-01T09:30'", field)
    browser.css("form.mecard-postpone button").click()
    error = browser.wait_for("form.mecard-postpone .error")
    assert "future" in error.text
    assert offers(dave)[0]["state"] == "pending"

    later = (datetime.datetime.now() + datetime.timedelta(days=3)).strftime("%Y-%m-%dT09:30")
    browser.driver.execute_script("arguments[0].value = arguments[1]", field, later)
    expected = browser.driver.execute_script(
        "return new Date(arguments[0]).toISOString()", later)
    press(browser, "form.mecard-postpone button", "postponed until")
    (offer,) = offers(dave)
    assert offer["state"] == "postponed"
    assert datetime.datetime.fromisoformat(offer["until"]) == datetime.datetime.fromisoformat(
        expected.replace("Z", "+00:00"))
    assert NUMBER not in dave.card("ally.vcf")


def test_refuse_with_the_keyboard_alone(srv, alice, browser):
    from selenium.webdriver.common.keys import Keys
    trent = offered(srv, alice, "trent")
    signed_in(browser, trent)
    page(browser, srv, "/updates", "form.mecard-refuse")
    for _ in range(80):  # Tab through the page to the refuse button, as a keyboard user does
        focused = browser.driver.switch_to.active_element
        if focused.text == "Refuse this change":
            break
        focused.send_keys(Keys.TAB)
    assert browser.driver.switch_to.active_element.text == "Refuse this change"
    browser.driver.switch_to.active_element.send_keys(Keys.ENTER)
    settle(browser, "No updates wait for you")
    assert offers(trent) == [] and NUMBER not in trent.card("ally.vcf")
    assert "alice" not in trent.api_ok("GET", "/policies")["policies"]


def test_block_asks_first_then_blocks_the_owner(srv, alice, browser):
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    frank = offered(srv, alice, "frank")
    signed_in(browser, frank)
    page(browser, srv, "/updates", "form.mecard-block")
    browser.css("form.mecard-block button").click()
    WebDriverWait(browser.driver, 5).until(expected_conditions.alert_is_present())
    browser.driver.switch_to.alert.dismiss()  # "no": nothing happens
    assert len(offers(frank)) == 1
    browser.css("form.mecard-block button").click()
    WebDriverWait(browser.driver, 5).until(expected_conditions.alert_is_present())
    browser.driver.switch_to.alert.accept()
    settle(browser, "No updates wait for you")
    assert frank.api_ok("GET", "/policies")["policies"] == {"alice": "block"}
    assert offers(frank) == [] and NUMBER not in frank.card("ally.vcf")


def test_choose_another_card_shows_what_it_would_do_there_then_puts_it_there(
        srv, alice, browser):
    from selenium.webdriver.support.ui import Select
    grace = offered(srv, alice, "grace")
    assert grace.put("work.vcf", WORK).status_code == 201
    signed_in(browser, grace)
    page(browser, srv, "/updates/alice", "form.mecard-choose")
    options = [o.text for o in Select(browser.css("form.mecard-choose select")).options]
    assert "Alice at work" in options and "A new contact" in options
    Select(browser.css("form.mecard-choose select")).select_by_visible_text("A new contact")
    press(browser, "form.mecard-choose button", "a new contact")
    Select(browser.css("form.mecard-choose select")).select_by_visible_text("Alice at work")
    press(browser, "form.mecard-choose button", "your card Alice at work")
    assert "/grace/contacts/work.vcf" in browser.text()
    # the API answers what the page shows: the offer as it would land in that card
    (there,) = grace.api_ok("GET", "/offers?owner=alice&card=/grace/contacts/work.vcf")[
        "offers"]
    assert there["card"] == {"path": "/grace/contacts/work.vcf", "name": "Alice at work"}
    assert grace.api_ok("GET", "/offers?owner=nobody")["offers"] == []
    assert grace.api("GET", "/offers?card=/grace/contacts/work.vcf").status_code == 400
    assert NUMBER not in grace.card("work.vcf")  # looking changed nothing
    press(browser, "button.mecard-accept-always", "No updates wait for you")
    assert NUMBER in grace.card("work.vcf") and NUMBER not in grace.card("ally.vcf")
    assert grace.copy_of("alice") == "work.vcf"
    assert grace.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}


def test_a_card_that_cannot_take_it_is_refused_beside_the_choice(srv, alice, browser):
    oscar = offered(srv, alice, "oscar")
    oscar.mkbook("work")
    assert oscar.http.request("MKCALENDAR", srv.url + "/oscar/cal/").status_code == 201
    event = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
             "UID:e1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T100000Z\r\n"
             "SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    assert oscar.http.put(srv.url + "/oscar/cal/e1.ics", data=event, headers={
        "Content-Type": "text/calendar"}).status_code == 201
    signed_in(browser, oscar)
    for card, why in (("/oscar/contacts/nothere.vcf", "no card"),
                      ("/oscar/contacts/.Radicale.props", "no card"),
                      ("/oscar/contacts/", "not the path of a card"),
                      ("/oscar/work/", "not the path of a card"),
                      ("/oscar/cal/e1.ics", "no card"),
                      ("/oscar/contacts/oscar-me.vcf", "no card"),
                      ("/alice/contacts/alice.vcf", "not in one of your address books")):
        browser.open(srv.url + PAGES + "/updates/alice?card=" + card)
        error = browser.wait_for("form.mecard-choose .error")
        assert why in error.text, card
        assert "your card Ally" in browser.text()  # the offer as proposed is still shown
        assert oscar.api("GET", "/offers?owner=alice&card=" + card).status_code in (
            400, 403, 404), card
    # positive control: a new contact is a choice that works
    assert oscar.api_ok("GET", "/offers?owner=alice&card=new")["offers"][0]["card"] is None


# -- history and undo ----------------------------------------------------------------

def test_history_lists_the_change_and_undo_brings_the_old_value_back(srv, alice, browser):
    walter = offered(srv, alice, "walter")
    walter.api_ok("POST", "/offers/alice/accept", {"once": True})
    assert NUMBER in walter.card("ally.vcf").replace("TEL;TYPE=CELL:", "")
    signed_in(browser, walter)
    page(browser, srv, "/history", "article.mecard-entry")
    entry = browser.css("article.mecard-entry")
    assert "from alice" in entry.text and "/walter/contacts/ally.vcf" in entry.text
    assert "phone" in entry.text.lower() and NUMBER in entry.text
    assert unlabelled(browser) == []
    browser.screenshot("recipient-history")
    page(browser, srv, "/history?owner=alice", "article.mecard-entry")
    page(browser, srv, "/history?owner=nobody-here", "main")
    assert "No changes from nobody-here" in browser.text()

    page(browser, srv, "/history", "form.mecard-undo")
    press(browser, "form.mecard-undo button", "Undone")
    copy = walter.card("ally.vcf")
    assert NUMBER not in copy.replace("TEL;TYPE=CELL:", "") and "FN:Ally" in copy
    (entry,) = [e for e in walter.api_ok("GET", "/history")["history"] if e.get("undone")]
    assert entry["owner"] == "alice"
    # undone: no undo button for it any more
    assert browser.all("#entry-%d form.mecard-undo" % entry["id"]) == []


# -- settings --------------------------------------------------------------------------

def test_settings_change_policies_and_discoverability(srv, alice, browser):
    from selenium.webdriver.support.ui import Select
    heidi = offered(srv, alice, "heidi")
    assert heidi.put("me.vcf", fixture("bob-me.vcf")).status_code == 201
    heidi.api_ok("POST", "/me-card", {"path": heidi.book() + "me.vcf"})
    heidi.verify_me_card()  # a verified e-mail address to be notified at
    signed_in(browser, heidi)
    page(browser, srv, "/settings", "form.mecard-default-policy")
    assert "alice" in browser.css("table.mecard-owners").text  # she offered a change
    assert unlabelled(browser) == []
    browser.screenshot("recipient-settings")

    Select(browser.css("form.mecard-owner-policy select")).select_by_value("auto")
    browser.css("form.mecard-owner-policy button").click()
    wait_until(lambda: heidi.api_ok("GET", "/policies")["policies"] == {"alice": "auto"},
               what="alice's policy")
    page(browser, srv, "/settings", "#default-policy")
    Select(browser.css("#default-policy")).select_by_value("block")
    browser.css("form.mecard-default-policy button").click()
    wait_until(lambda: heidi.api_ok("GET", "/policies")["policies"] == {
        "*": "block", "alice": "auto"}, what="the default policy")
    page(browser, srv, "/settings", "#find-nobody")
    browser.css("#find-nobody").click()
    browser.css("form.mecard-discoverability button").click()
    wait_until(lambda: heidi.api_ok("GET", "/privacy")["discoverability"] == "nobody",
               what="discoverability")
    page(browser, srv, "/settings", "#notify-email")
    Select(browser.css("#notify-email")).select_by_value("offers-and-changes")
    assert [o.text for o in Select(browser.css("#notify-address")).options] == [
        "bob@example.org"]
    browser.css("form.mecard-notifications button").click()
    wait_until(lambda: heidi.api_ok("GET", "/notifications")["email"] == "offers-and-changes",
               what="the notifications")
    assert heidi.api_ok("GET", "/notifications")["address"] == "mailto:bob@example.org"
    # the page shows what is in effect now
    page(browser, srv, "/settings", "#find-nobody")
    assert browser.css("#find-nobody").is_selected()
    assert Select(browser.css("#default-policy")).first_selected_option.get_attribute(
        "value") == "block"
    # back to the server's default: null removes the own default
    Select(browser.css("#default-policy")).select_by_value("")
    browser.css("form.mecard-default-policy button").click()
    wait_until(lambda: "*" not in heidi.api_ok("GET", "/policies")["policies"],
               what="the default policy removed")


# -- the invite landing ----------------------------------------------------------------

def _invite(owner: Client, **data) -> dict:
    return owner.api_ok("POST", "/invites", data)


def test_invite_landing_shows_the_card_then_sign_in_and_accept_as_a_new_contact(
        srv, alice, browser):
    ivan = person(srv, "ivan")
    made = _invite(alice, label="for Ivan")
    page(browser, srv, "/invite/" + made["token"], "table.mecard-changes")
    text = browser.text()
    assert "alice invites you" in text and "Alice Archer" in text and NUMBER in text
    assert "Signed in as" not in text and "Main St" not in text  # shared fields only
    assert browser.all("form[data-api]") == []  # nobody signed in: nothing to press
    sign_in = browser.css("a.mecard-signin")
    assert sign_in.get_attribute("href").endswith(
        "/login?next=" + "%2Finvite%2F" + made["token"])
    browser.screenshot("recipient-invite-anonymous")

    signed_in(browser, ivan)
    sign_in.click()  # the login answers 401 until the browser has a password, then 303
    browser.wait_for("form.mecard-accept")
    assert browser.driver.current_url == srv.url + PAGES + "/invite/" + made["token"]
    assert unlabelled(browser) == []
    browser.screenshot("recipient-invite-signed-in")
    assert ivan.hrefs() == []  # looking changed nothing
    press(browser, "form.mecard-accept button", "from alice")  # lands on the history
    copy = ivan.card(ivan.copy_of("alice"))
    assert NUMBER in copy and "Alice Archer" in copy


def test_unknown_revoked_and_expired_invites_show_one_neutral_refusal(srv, alice):
    import time
    revoked = _invite(alice)
    alice.api_ok("POST", "/invites/%s/revoke" % revoked["id"], {})
    expired = _invite(alice, expires_in=1)
    time.sleep(1.2)
    answers = [requests.get(srv.url + PAGES + "/invite/" + token, timeout=10)
               for token in (revoked["token"], expired["token"], "x" * 32)]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    assert "not valid" in answers[0].text and "alice" not in answers[0].text
    # the API answers the same to whoever holds the link, signed in or not
    api = requests.get(srv.url + PAGES + "/api/v1/invite/" + "x" * 32, timeout=10)
    assert api.status_code == 404 and "not valid" in api.json()["error"]
    # positive control: a valid invite opens without sign-in, and nothing else does
    valid = _invite(alice)
    assert requests.get(srv.url + PAGES + "/invite/" + valid["token"],
                        timeout=10).status_code == 200
    assert requests.get(srv.url + PAGES + "/api/v1/invite/" + valid["token"],
                        timeout=10).json()["owner"] == "alice"
    for closed in ("/updates", "/history", "/settings"):
        assert requests.get(srv.url + PAGES + closed, timeout=10).status_code == 401
    assert requests.get(srv.url + PAGES + "/api/v1/offers", timeout=10).status_code == 401


def test_past_the_shared_allowance_of_opens_the_invite_page_asks_to_sign_in(tmp_path):
    # its own server: a limit of 2 opens an hour per user (and for all not signed in)
    server = RadicaleServer(tmp_path, USERS, mecard_invite_opens_per_hour="2").start()
    try:
        owner = person(server, "alice", "alice-me.vcf")
        person(server, "bob")
        url = server.url + PAGES + "/invite/" + _invite(owner)["token"]
        for _ in range(2):
            assert "Alice Archer" in requests.get(url, timeout=10).text
        limited = requests.get(url, timeout=10)
        assert limited.status_code == 200 and "Sign in to see the card" in limited.text
        assert "Alice Archer" not in limited.text and NUMBER not in limited.text
        # a signed-in user has an allowance of their own
        signed = requests.get(url, auth=("bob", "bob-pw"), timeout=10)
        assert signed.status_code == 200 and "Alice Archer" in signed.text
    finally:
        server.stop()


# -- untrusted card data ---------------------------------------------------------------

EVIL = {
    "FN": "<img src=x onerror=window.pwned=1>",
    "NOTE": "<script>window.pwned=2</script> {{7*7}} {% if 1 %}x{% endif %}",
    "ORG": "\"'><svg onload=window.pwned=3>",
    "URL": "javascript:window.pwned=4",
}


def _inert(browser: Browser) -> None:
    """Every value shows as text: no element injected, nothing ran, no javascript: link."""
    from selenium.common.exceptions import NoAlertPresentException
    driver = browser.driver
    assert browser.all("img") == [] and browser.all("svg") == [] and browser.all("iframe") == []
    scripts = [s.get_attribute("src") for s in browser.all("script")]
    assert len(scripts) == 1 and scripts[0].endswith("/static/mecard.js")
    assert not any((a.get_attribute("href") or "").lower().startswith("javascript")
                   for a in browser.all("a"))
    assert driver.execute_script("return window.pwned") is None
    try:
        driver.switch_to.alert
        raise AssertionError("an alert opened")
    except NoAlertPresentException:
        pass
    # no template ran over card data (a time such as 22:44:49 is not a product of 7*7)
    assert not re.search(r"(?<![\d:])49(?![\d:])", browser.text())


def test_a_hostile_me_card_shows_as_inert_text_on_every_page(srv, browser):
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mallory\r\nFN:%s\r\nNOTE:%s\r\nORG:%s\r\n" \
           "URL:%s\r\nTEL:+1 202 555 0166\r\nEND:VCARD\r\n" % (
               EVIL["FN"], EVIL["NOTE"], EVIL["ORG"], EVIL["URL"])
    mallory = owner_with_card(srv, "mallory", card)
    mallory.api_ok("POST", "/shared-fields", {"fields": ["FN", "TEL", "NOTE", "ORG", "URL"]})
    # Judy has Mallory's number in her contacts (so Mallory may reach her): a new name
    judy = offered(srv, mallory, "judy", card="BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m\r\n"
                   "FN:M\r\nTEL:+1 202 555 0166\r\nEND:VCARD\r\n")
    token = _invite(mallory)["token"]

    def check(path: str, ready: str) -> str:
        page(browser, srv, path, ready)
        _inert(browser)
        return browser.text()

    text = check("/invite/" + token, "table.mecard-changes")  # nobody signed in
    for value in EVIL.values():
        assert value in text, value
    signed_in(browser, judy)
    for path in ("/updates", "/updates/mallory"):
        text = check(path, "article.mecard-offer")
        for value in EVIL.values():
            assert value in text, (path, value)
    browser.screenshot("recipient-offer-hostile")
    press(browser, "button.mecard-accept-always", "No updates wait for you")
    text = check("/history", "article.mecard-entry")
    assert EVIL["URL"] in text and EVIL["NOTE"] in text
    check("/settings", "table.mecard-owners")
    check("/", "nav")
    # the raw HTML holds the values escaped, never as markup
    for path, auth in (("/history", ("judy", "judy-pw")), ("/invite/" + token, None)):
        raw = requests.get(srv.url + PAGES + path, auth=auth, timeout=10).text
        assert "<img" not in raw and "<svg" not in raw and "<script>window" not in raw
        assert "&lt;svg onload=window.pwned=3&gt;" in raw, path
    assert "&lt;img src=x onerror=window.pwned=1&gt;" in raw


# -- another user's data, another origin ----------------------------------------------

def test_my_pages_never_show_or_touch_another_users_offers_and_history(srv, alice, browser):
    carol = offered(srv, alice, "carol")
    carol.api_ok("POST", "/offers/alice/accept", {"once": True})
    (entry,) = carol.api_ok("GET", "/history")["history"]
    victor = offered(srv, alice, "victor")  # another recipient of alice's
    signed_in(browser, victor)
    for path in ("/updates", "/updates/alice", "/history", "/history?owner=alice",
                 "/settings"):
        page(browser, srv, path, "main")
        assert "carol" not in browser.text() and "/carol/" not in browser.driver.page_source
    # the pages' own way of posting, aimed at carol's ids: refused, and nothing changes
    carols = "/carol/contacts/ally.vcf"
    statuses = browser.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const post = (call, body) => fetch(
          document.documentElement.dataset.root + "/api/v1" + call, {method: "POST",
          headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
          .then((r) => r.status);
        Promise.all([post("/history/%d/undo", {}),
                     post("/offers/alice/accept", {card: "%s"})]).then(done);""" % (
        entry["id"], carols))
    assert statuses == [404, 403]
    assert NUMBER in carol.card("ally.vcf").replace("TEL;TYPE=CELL:", "")
    assert not carol.api_ok("GET", "/history")["history"][0]["undone"]
    assert len(offers(victor)) == 1 and victor.api_ok("GET", "/links")["links"] == []
    # nor does the preview look into carol's card: the choice is refused beside it
    browser.open(srv.url + PAGES + "/updates/alice?card=" + carols)
    assert "not in one of your address books" in browser.wait_for(
        "form.mecard-choose .error").text
    assert "your card Ally" in browser.text() and "/victor/contacts/ally.vcf" in browser.text()
    # positive control: carol herself may undo it
    assert carol.api("POST", "/history/%d/undo" % entry["id"], {}).status_code == 200


class _Evil(http.server.BaseHTTPRequestHandler):
    """Another origin (another port of 127.0.0.1) serving pages that try to use the API."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802  (the http.server name)
        api = self.target + PAGES + "/api/v1"
        pages = {
            "/fetch": """<script>
              const body = JSON.stringify({owner: "alice", policy: "block"});
              window.results = [];
              Promise.allSettled([
                fetch("%(api)s/policies", {method: "POST", credentials: "include",
                  headers: {"Content-Type": "application/json"}, body}),
                fetch("%(api)s/policies", {method: "POST", credentials: "include",
                  mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}),
                fetch("%(api)s/offers/alice/refuse", {method: "POST", credentials: "include",
                  mode: "no-cors", body: "{}"}),
              ]).then((r) => { window.results = r.map((x) => x.status); });
              </script>""",
            "/form": """<form id=f method=post enctype="text/plain"
                  action="%(api)s/offers/alice/block">
              <input name='{"x":"' value='"}'></form>
              <script>document.getElementById("f").submit();</script>""",
            "/frame": """<iframe id=fr src="%(pages)s/updates"></iframe>""",
        }
        body = pages.get(self.path, "")
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write((body % {"api": api, "pages": self.target + PAGES}).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def evil(srv) -> Iterator[str]:
    """A little HTTP server on another port: another origin than the pages'."""
    handler = type("Evil", (_Evil,), {"target": srv.url})
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % other.server_address[1]
    finally:
        other.shutdown()
        other.server_close()


def test_a_page_of_another_origin_changes_nothing_and_cannot_frame_the_pages(
        srv, alice, browser, evil):
    sybil = offered(srv, alice, "sybil")
    before = offers(sybil)
    signed_in(browser, sybil)  # the browser sends sybil's password with every request
    browser.open(evil + "/fetch")
    results = wait_until(lambda: browser.driver.execute_script(
        "return window.results.length === 3 && window.results"), what="the fetches")
    assert results[0] == "rejected"  # the JSON call is stopped at the CORS preflight
    browser.open(evil + "/form")
    wait_until(lambda: browser.driver.current_url.startswith(srv.url), what="the form post")
    assert "send changes as JSON" in browser.text()  # the API's refusal
    assert sybil.api_ok("GET", "/policies")["policies"] == {}
    assert offers(sybil) == before and NUMBER not in sybil.card("ally.vcf")

    browser.open(evil + "/frame")
    refusals: list[str] = []
    wait_until(lambda: refusals.extend(browser.console_errors()) or any(
        "frame-ancestors 'none'" in e for e in refusals), what="the frame refused")
    assert _frame_blocked(browser)
    invite = "/invite/" + _invite(alice)["token"]
    for path in ("/updates", "/updates/alice", "/history", "/settings", invite):
        answer = requests.get(srv.url + PAGES + path, auth=("sybil", "sybil-pw"), timeout=10)
        assert answer.status_code == 200, path
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Frame-Options"] == "DENY"

    # positive control: the same change from the pages' own origin is taken
    page(browser, srv, "/updates", "article.mecard-offer")
    status = browser.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.documentElement.dataset.root + "/api/v1/policies", {method: "POST",
          headers: {"Content-Type": "application/json"},
          body: JSON.stringify({owner: "alice", policy: "block"})})
          .then((r) => done(r.status));""")
    assert status == 200
    assert sybil.api_ok("GET", "/policies")["policies"] == {"alice": "block"}


def _frame_blocked(browser: Browser) -> bool:
    """Whether the framed page stayed empty (the browser refused to show it)."""
    frame = browser.css("#fr")
    browser.driver.switch_to.frame(frame)
    try:
        return "Updates for me" not in browser.driver.page_source
    finally:
        browser.driver.switch_to.default_content()
