# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole story of issue 15, told once in a real browser against a real server.

The shipped defaults (policy ``ask``, discoverability ``contacts``, nobody pre-authorised);
the server's own SMTP sink (``tests/server.py`` ``MailSink``) receives the e-mails.  Every
action a person takes is taken in headless Chromium (clicks, typing, Enter); the JSON API
is only read, to check what the pages did.  Phones are vdirsyncer, a real CardDAV client:
Alice's phone puts her cards up and her edit of her me card; Bob's and Carol's phones sync
their books down, and show that the copies changed (and changed back).

- Carol has an account: her me card and her e-mail, verified on her card page.
- Alice picks her me card, verifies her number and e-mail, shares with her group "family" (Carol is
  in it) and gives the family its own fields (the home address), then makes an invite.
- Bob opens the invite, signs in and accepts it as a new contact.
- Alice moves house and adds a work number on her phone: Bob's copy follows by itself,
  Carol is asked (an offer) and the "Who gets it" page shows both states.
- Carol gets an e-mail; its link alone changes nothing; signed in she sees before -> after
  and accepts; on the History page she undoes it.  Her phone sees both.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.browser import Browser, browser  # noqa: F401  (the fixture)
from tests.server import Client, RadicaleServer, last_code, settled, wait_until
from tests.test_notify_e2e import notices
from tests.test_notify_e2e import text as body
from tests.test_number_change_e2e import VDIRSYNCER, Phone

PAGES = "/.web/mecard"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
#: The notification rules on a smaller clock: 1 s of quiet after the last change before an
#: e-mail goes (120 s shipped) and at most one e-mail per 3 s (60 minutes shipped), so that
#: the story takes seconds.  Everything else is the shipped configuration.
FAST_NOTIFY = {"mecard_notify_settle": "1", "mecard_notify_digest_minutes": "0.05"}

OLD_HOME, NEW_HOME = "1 Main St", "2 Oak Ave"
NUMBER, WORK = "+1 202 555 0101", "+1 202 555 0188"
ALICE_ME = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-me\r\nFN:Alice Archer\r\n"
            "N:Archer;Alice;;;\r\nTEL;TYPE=CELL:%s\r\nEMAIL;TYPE=INTERNET:alice@example.org\r\n"
            "ADR;TYPE=HOME:;;%s;Springfield;;12345;USA\r\nNOTE:private note of alice\r\n"
            "END:VCARD\r\n" % (NUMBER, OLD_HOME))
#: Alice's contact for Carol, in her group "family", by Carol's e-mail
ALICES_CAROL = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alices-carol\r\nFN:Carol\r\n"
                "EMAIL:carol@example.org\r\nCATEGORIES:Family\r\nEND:VCARD\r\n")
CAROL_ME = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:carol-me\r\nFN:Carol Cook\r\n"
            "N:Cook;Carol;;;\r\nEMAIL:carol@example.org\r\nEND:VCARD\r\n")
#: Carol's own card for Alice: her number (so Alice may find Carol), e-mail and home
#: address, already all that Alice shares and all that the family gets: linked, nothing to
#: ask (so the only offer, and the only e-mail, is for Alice's edit on her phone).
CAROLS_ALICE = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:carols-alice\r\nFN:Al\r\n"
                "N:Archer;Alice;;;\r\nTEL;TYPE=CELL:%s\r\n"
                "EMAIL;TYPE=INTERNET:alice@example.org\r\n"
                "ADR;TYPE=HOME:;;%s;Springfield;;12345;USA\r\nEND:VCARD\r\n" % (NUMBER, OLD_HOME))
#: The family gets Alice's home address on top of her shared fields (FN N TEL EMAIL)
FAMILY_FIELDS = ("FN", "N", "TEL", "EMAIL", "ADR")


@pytest.fixture
def story_server(tmp_path) -> Iterator[RadicaleServer]:
    """Shipped defaults; only the notification clock is shorter (see FAST_NOTIFY)."""
    srv = RadicaleServer(tmp_path, USERS, **FAST_NOTIFY).start()
    try:
        yield srv
    finally:
        srv.stop()


# -- what a person does in the browser --------------------------------------------------

def go(browser: Browser, srv: RadicaleServer, page: str, ready: str = "nav.mecard-nav") -> None:
    browser.open(srv.url + PAGES + page)
    browser.wait_for(ready)


def reloads(browser: Browser, press: Any, accept_confirm: bool = False) -> None:
    """Press a button of a form the page script sends, and wait for the page it loads."""
    browser.press_and_wait(press, accept_confirm)


def pick_me_card(browser: Browser, srv: RadicaleServer, name: str) -> None:
    """On "My card": tick the card called ``name`` and use it."""
    go(browser, srv, "/card")
    (choice,) = [label for label in browser.all("#choose-me-card label.choice")
                 if name in label.text]
    choice.find_element("css selector", "input[type=radio]").click()
    reloads(browser, browser.css("#choose-me-card button"))
    assert browser.css(".me-card-name").text == name


def verify_key(browser: Browser, key: str, code_of: Any) -> None:
    """On "My card": ask for a code for ``key``, type the one that came, confirm."""
    def row() -> Any:
        return browser.css("tr.key[data-key='%s']" % key)
    reloads(browser, row().find_element("css selector", ".verify-key button"))
    assert row().find_element("css selector", ".key-state").text == "code sent"
    row().find_element("css selector", ".confirm-key input[name=code]").send_keys(code_of())
    reloads(browser, row().find_element("css selector", ".confirm-key button"))
    assert row().find_element("css selector", ".key-state").text == "verified"


def states_shown(browser: Browser, srv: RadicaleServer) -> dict[str, str]:
    go(browser, srv, "/recipients")
    return {row.get_attribute("data-user"): row.get_attribute("data-state")
            for row in browser.all("tr.recipient")}


# -- phones (vdirsyncer) and mail -----------------------------------------------------

class SyncingPhone(Phone):
    """A phone that discovers its book once, then only syncs (as a phone does; each
    vdirsyncer run costs most of a second)."""

    discovered = False

    def sync(self) -> None:
        if not self.discovered:
            super().sync()
            self.discovered = True
            return
        done = subprocess.run([str(VDIRSYNCER), "-c", str(self.config), "sync"],
                              capture_output=True, text=True, timeout=120, input="")
        assert done.returncode == 0, done.stdout + done.stderr


def phone_of(tmp_path: Path, srv: RadicaleServer, user: str,
             *cards: tuple[str, str]) -> SyncingPhone:
    """``user``'s phone, with these cards (file name, vCard) added on it and synced up."""
    phone = SyncingPhone(tmp_path, srv, user)
    for name, text in cards:
        (phone.local / name).write_text(text)
    phone.sync()
    return phone


def edit_on_phone(phone: SyncingPhone, uid: str, old: str, new: str) -> None:
    (path,) = [p for p in phone.local.glob("*.vcf") if "UID:%s" % uid in p.read_text()]
    path.write_text(path.read_text().replace(old, new))
    phone.sync()


def uid_of(card: str) -> str:
    (uid,) = re.findall(r"^UID:(.*)$", card.replace("\r\n", "\n"), re.M)
    return uid


def lines(card: str) -> list[str]:
    """A card's lines but its REV (when it was written), in order."""
    return [ln for ln in card.splitlines() if not ln.startswith("REV")]


def offers(client: Client) -> list[dict]:
    return client.api_ok("GET", "/offers")["offers"]


# -- the story, step by step (a failure names its step) -------------------------------

@dataclass
class Story:
    """The server, the one browser (signed in as whoever acts), the phones and the API
    clients (which only read)."""

    srv: RadicaleServer
    browser: Browser
    tmp_path: Path
    alice: Client
    bob: Client
    carol: Client
    phones: dict[str, SyncingPhone] = field(default_factory=dict)
    invite: str = ""        # the invite link Alice hands Bob
    bob_uid: str = ""       # the UID of Bob's copy of Alice's card
    offer_link: str = ""    # the link in Carol's e-mail
    carols_card: str = ""   # Carol's card for Alice before she accepted


def phones_hold_the_first_cards(s: Story) -> None:
    """Alice's phone: her own card and her contact for Carol (family); Carol's: her own card
    and her card for Alice; Bob's book is empty."""
    s.phones["alice"] = phone_of(s.tmp_path, s.srv, "alice", ("alice-me.vcf", ALICE_ME),
                                 ("alices-carol.vcf", ALICES_CAROL))
    s.phones["carol"] = phone_of(s.tmp_path, s.srv, "carol", ("carol-me.vcf", CAROL_ME),
                                 ("carols-alice.vcf", CAROLS_ALICE))
    s.phones["bob"] = phone_of(s.tmp_path, s.srv, "bob")


def carol_picks_her_me_card_and_verifies_her_email(s: Story) -> None:
    s.browser.sign_in("carol", USERS["carol"])
    pick_me_card(s.browser, s.srv, "Carol Cook")
    verify_key(s.browser, "mailto:carol@example.org",
               lambda: last_code(s.srv.mail.to("carol@example.org")))
    s.browser.screenshot("story-01-carol-card")
    # the verified address is where her notifications go (the default once verified)
    assert s.carol.api_ok("GET", "/notifications")["address"] == "mailto:carol@example.org"


def alice_picks_her_me_card_and_verifies_her_keys(s: Story) -> None:
    """Her number (a code by SMS) and her e-mail: Carol's card holds both, and only a card
    whose keys of Alice's are all verified is hers beyond doubt (linked without asking;
    else Carol would first be asked whether it is Alice's)."""
    s.browser.sign_in("alice", USERS["alice"])
    pick_me_card(s.browser, s.srv, "Alice Archer")
    verify_key(s.browser, "tel:+12025550101", lambda: last_code(s.srv.sms_to("+12025550101")))
    verify_key(s.browser, "mailto:alice@example.org",
               lambda: last_code(s.srv.mail.to("alice@example.org")))
    assert s.alice.api_ok("GET", "/me")["me_card"].endswith("/alice-me.vcf")
    s.browser.screenshot("story-02-alice-card")


def alice_shares_with_her_family_group(s: Story) -> None:
    from selenium.webdriver.support.ui import Select
    go(s.browser, s.srv, "/recipients")
    Select(s.browser.css("#add-group select")).select_by_value("group:family")
    reloads(s.browser, s.browser.css("#add-group button"))
    assert s.alice.api_ok("GET", "/me")["targets"] == ["group:family"]
    # Carol's card for Alice already holds all Alice shares: linked, nothing to ask
    report = settled(s.alice)
    assert {r["user"]: r["state"] for r in report["recipients"]} == {"carol": "delivered"}
    assert states_shown(s.browser, s.srv) == {"carol": "delivered"}
    s.browser.screenshot("story-03-alice-recipients")


def alice_gives_the_family_her_home_address(s: Story) -> None:
    """The family's own fields: the shared ones and ADR (everyone else: the shared ones)."""
    go(s.browser, s.srv, "/card")
    form = s.browser.css("form.audience[data-rule='group:family']")
    for box in form.find_elements("css selector", "input[name=fields]"):
        if box.is_selected() != (box.get_attribute("value") in FAMILY_FIELDS):
            box.click()
    reloads(s.browser, form.find_element("css selector", "button"))
    assert {"rule": "group:family", "fields": sorted(FAMILY_FIELDS)} in [
        {"rule": a["rule"], "fields": sorted(a["fields"])}
        for a in s.alice.api_ok("GET", "/me")["audiences"]]
    preview = s.browser.css("article.preview[data-rule='group:family']")
    assert OLD_HOME in preview.text and "private note" not in preview.text
    assert settled(s.alice)["recipients"][0]["state"] == "delivered"  # Carol had it all
    s.browser.driver.execute_script("arguments[0].scrollIntoView()", preview)
    s.browser.screenshot("story-04-alice-family-fields")


def alice_makes_an_invite(s: Story) -> None:
    """Typed, and sent with Enter; the link is shown once, with its QR code."""
    from selenium.webdriver.common.keys import Keys
    go(s.browser, s.srv, "/invites")
    s.browser.css("#invite-create input[name=label]").send_keys("for Bob", Keys.ENTER)
    s.browser.wait_for("#invite-qr")
    s.invite = s.browser.css("#invite-link").get_attribute("value")
    assert s.invite.startswith(s.srv.url + PAGES + "/invite/")
    s.browser.screenshot("story-05-alice-invite")


def bob_opens_the_invite_signs_in_and_accepts(s: Story) -> None:
    b = s.browser
    b.sign_out()
    b.open(s.invite)  # not signed in: he sees the card as it would arrive
    b.wait_for("table.mecard-changes")
    assert "alice invites you" in b.text() and "Alice Archer" in b.text()
    assert OLD_HOME not in b.text()  # Bob gets the shared fields, not the family's
    b.screenshot("story-06-bob-invite")
    b.sign_in("bob", USERS["bob"])  # what he types at the browser's login prompt
    b.css("a.mecard-signin").click()
    b.wait_for("form.mecard-accept")
    assert b.driver.current_url == s.invite  # back on the invite
    reloads(b, b.css("form.mecard-accept button"))
    assert "/history" in b.driver.current_url and "from alice" in b.text()
    b.screenshot("story-07-bob-accepted")
    assert s.bob.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}
    s.bob_uid = uid_of(s.bob.card(s.bob.copy_of("alice")))
    s.phones["bob"].sync()
    held = s.phones["bob"].card(s.bob_uid)
    assert NUMBER in held and "Alice Archer" in held and OLD_HOME not in held


def alice_edits_her_card_on_her_phone_and_the_states_show(s: Story) -> None:
    """She moves house and adds her work number: Bob's copy follows by itself (he took her
    card from now on), Carol is asked (an offer)."""
    edit_on_phone(s.phones["alice"], "alice-me", "ADR;TYPE=HOME:;;%s" % OLD_HOME,
                  "TEL;TYPE=WORK:%s\r\nADR;TYPE=HOME:;;%s" % (WORK, NEW_HOME))
    report = settled(s.alice)
    assert {r["user"]: r["state"] for r in report["recipients"]} == {
        "bob": "delivered", "carol": "offered"}
    s.browser.sign_in("alice", USERS["alice"])
    assert states_shown(s.browser, s.srv) == {"bob": "delivered", "carol": "offered"}
    s.browser.driver.execute_script("arguments[0].scrollIntoView()",
                                    s.browser.css("table.recipients"))
    s.browser.screenshot("story-08-alice-states")
    s.phones["bob"].sync()
    held = s.phones["bob"].card(s.bob_uid)
    assert WORK in held and NEW_HOME not in held and OLD_HOME not in held


def carol_gets_one_email_with_a_link_to_the_offer(s: Story) -> None:
    (message,) = wait_until(lambda: notices(s.srv, "carol@example.org"), 30,
                            "Carol's e-mail")
    links = re.findall(r"https?://\S+", body(message))
    (s.offer_link,) = [u for u in links if "/updates/" in u]
    assert s.offer_link == s.srv.url + PAGES + "/updates/alice"
    assert not notices(s.srv, "alice@example.org")  # the owner is told nothing


def the_link_alone_changes_nothing(s: Story) -> None:
    """Opened as a mail scanner would (not signed in), then by Carol signed in."""
    (offer,) = offers(s.carol)
    s.carols_card = card = s.carol.card("carols-alice.vcf")
    b = s.browser
    b.sign_out()
    b.open(s.offer_link)
    assert "Update from alice" not in b.text()  # Radicale asks for the login first
    assert [e for e in b.console_errors() if "status of 401" in e]
    assert offers(s.carol) == [offer] and s.carol.card("carols-alice.vcf") == card
    b.sign_in("carol", USERS["carol"])
    b.open(s.offer_link)
    b.wait_for("article.mecard-offer")
    assert offers(s.carol) == [offer] and s.carol.card("carols-alice.vcf") == card


def carol_sees_before_and_after_and_accepts(s: Story) -> None:
    """Before -> after of her own card "Al"; she accepts this time only."""
    b = s.browser
    assert "your card Al" in b.text()
    rows = b.all("table.mecard-changes tbody tr")
    (address,) = [r for r in rows if OLD_HOME in r.text]
    assert OLD_HOME in address.find_element("css selector", ".before").text
    assert NEW_HOME in address.find_element("css selector", ".after").text
    (work,) = [r for r in rows if WORK in r.text]
    assert "nothing" in work.text and WORK in work.find_element("css selector", ".after").text
    b.screenshot("story-09-carol-offer")
    b.css("button.mecard-accept-once").click()
    b.wait_for_text("No updates wait for you")
    b.screenshot("story-10-carol-accepted")
    assert offers(s.carol) == []
    assert s.carol.api_ok("GET", "/policies")["policies"] == {}  # this time only
    s.phones["carol"].sync()  # CardDAV: her phone has the change
    held = s.phones["carol"].card("carols-alice")
    assert NEW_HOME in held and WORK in held and OLD_HOME not in held and "FN:Al" in held


def carol_undoes_it_on_the_history_page(s: Story) -> None:
    b = s.browser
    go(b, s.srv, "/history", "article.mecard-entry")
    (entry,) = [e for e in b.all("article.mecard-entry") if NEW_HOME in e.text]
    assert "from alice" in entry.text
    b.screenshot("story-11-carol-history")
    reloads(b, entry.find_element("css selector", "form.mecard-undo button"))
    assert "Undone" in b.text()
    b.screenshot("story-12-carol-undone")
    s.phones["carol"].sync()  # CardDAV: her phone has her card as it was
    held = s.phones["carol"].card("carols-alice")
    assert OLD_HOME in held and NEW_HOME not in held and WORK not in held and "FN:Al" in held
    assert lines(s.carol.card("carols-alice.vcf")) == lines(s.carols_card)  # as it was
    assert b.console_errors() == []


def test_owner_shares_by_group_and_invite_a_change_is_offered_mailed_accepted_and_undone(
        story_server, browser, tmp_path):
    srv = story_server
    s = Story(srv, browser, tmp_path, *(srv.client(u) for u in ("alice", "bob", "carol")))
    phones_hold_the_first_cards(s)
    carol_picks_her_me_card_and_verifies_her_email(s)
    alice_picks_her_me_card_and_verifies_her_keys(s)
    alice_shares_with_her_family_group(s)
    alice_gives_the_family_her_home_address(s)
    alice_makes_an_invite(s)
    bob_opens_the_invite_signs_in_and_accepts(s)
    alice_edits_her_card_on_her_phone_and_the_states_show(s)
    carol_gets_one_email_with_a_link_to_the_offer(s)
    the_link_alone_changes_nothing(s)
    carol_sees_before_and_after_and_accepts(s)
    carol_undoes_it_on_the_history_page(s)
