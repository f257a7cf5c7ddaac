# SPDX-License-Identifier: GPL-3.0-or-later
"""The notification e-mail's text (:mod:`radicale_plugin.notify.message`) and the
unsubscribe token (:mod:`radicale_plugin.notify.tokens`), both pure."""
from __future__ import annotations

import re

import pytest

from radicale_plugin.errors import Forbidden
from radicale_plugin.index.records import EVENT_CHANGED, EVENT_OFFER, EVENT_OFFER_DUE
from radicale_plugin.notify import tokens
from radicale_plugin.notify.message import NAME_LENGTH, Item, compose, display_name

BASE = "https://contacts.example.net/dav"
TOKEN = "dG9rZW4.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln"

#: Display names an owner might write to smuggle links or text into other people's mail.
HOSTILE = {
    "a URL": "Alice https://evil.example/phish",
    "a bare domain": "Alice evil.example",
    "www": "Alice www.evil",
    "an address": "Alice alice@evil.example",
    "a javascript: link": "Alice javascript:alert(1)",
    "newlines and a fake header": "Alice\r\nBcc: everyone@example.org\r\n\r\nClick here",
    "a line separator": "Alice\u2028Visit evil.example",
    "a bidi override": "Alice \u202eelpmaxe.live",
    "an IP address": "Alice 203.0.113.9",
    "a percent-encoded URL": "Alice http%3A%2F%2Fevil",
    "a path": "Alice /.web/mecard/unsubscribe/x",
    "punycode": "Alice xn--e1afmkfd",
}


def urls(text: str) -> set[str]:
    return set(re.findall(r"[a-z][a-z0-9+.-]*://\S+", text))


def mail(name: str, kind: str = EVENT_OFFER):
    return compose("bob", [Item("alice", name, kind)], BASE, TOKEN, "Contacts")


@pytest.mark.parametrize("why", sorted(HOSTILE))
def test_a_display_name_carries_no_url_line_break_or_address(why):
    shown = display_name(HOSTILE[why])
    assert shown.startswith("Alice") and "\n" not in shown and "\r" not in shown
    for bad in ("evil", "http", "@", "javascript", "203.0", "/", "\u2028", "\u202e", "xn--"):
        assert bad not in shown, (why, shown)
    message = mail(HOSTILE[why])
    # every URL in the message is the server's own
    assert all(u.startswith(BASE + "/.web/mecard/") for u in urls(message.body)), why
    assert "evil" not in message.body + message.subject, why
    assert "\n" not in message.subject and "\r" not in message.subject


def test_a_plain_display_name_is_kept_and_a_long_one_is_cut():
    assert display_name("Zoë  O'Brien-Smith") == "Zoë O'Brien-Smith"
    long = display_name("Alice " * 40)
    assert len(long) <= NAME_LENGTH and long.endswith("…")
    assert display_name("") == "" and display_name(None) == ""


def test_the_message_links_only_to_the_servers_pages_and_the_unsubscribe_link():
    message = compose("bob", [Item("alice", "Alice Archer", EVENT_OFFER),
                              Item("alice", "Alice Archer", EVENT_OFFER),
                              Item("carol", "Carol", EVENT_CHANGED)], BASE, TOKEN, "Contacts")
    assert urls(message.body) == {
        BASE + "/.web/mecard/updates/alice", BASE + "/.web/mecard/history?owner=carol",
        BASE + "/.web/mecard/settings", BASE + "/.web/mecard/unsubscribe/" + TOKEN}
    assert message.body.count("Alice Archer (alice)") == 1  # five edits: one line
    assert message.headers["List-Unsubscribe"] == "<%s/.web/mecard/unsubscribe/%s>" % (
        BASE, TOKEN)
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.subject == "Alice Archer (alice) has a card update for you"


def test_the_subject_names_the_one_owner_or_counts():
    assert mail("Alice Archer").subject == "Alice Archer (alice) has a card update for you"
    assert "postponed" in mail("Alice Archer", EVENT_OFFER_DUE).body
    two = compose("bob", [Item("alice", "A", EVENT_OFFER), Item("carol", "C", EVENT_OFFER)],
                  BASE, TOKEN, "Contacts")
    assert two.subject == "2 card updates wait for you at Contacts"
    changed = mail("Alice Archer", EVENT_CHANGED)
    assert changed.subject == "Cards of 1 person were updated at Contacts"
    assert "/history?owner=alice" in changed.body and "/updates/alice" not in changed.body


def test_an_account_name_is_escaped_in_links():
    message = compose("bob", [Item("a b/c", "", EVENT_OFFER)], BASE, TOKEN, "Contacts")
    assert BASE + "/.web/mecard/updates/a%20b%2Fc" in message.body


SECRET = b"k" * 32


def test_a_token_is_for_its_user_and_purpose_until_it_expires():
    token = tokens.make(SECRET, "bob", tokens.UNSUBSCRIBE, 2000.0)
    assert tokens.check(SECRET, token, tokens.UNSUBSCRIBE, 1999.0) == "bob"
    with pytest.raises(tokens.Expired):
        tokens.check(SECRET, token, tokens.UNSUBSCRIBE, 2000.0)


@pytest.mark.parametrize("forge", ["other key", "other purpose", "changed payload",
                                   "changed signature", "no signature", "empty", "long"])
def test_a_forged_token_is_refused(forge):
    good = tokens.make(SECRET, "bob", tokens.UNSUBSCRIBE, 2000.0)
    body, signature = good.split(".")
    forged = {
        "other key": tokens.make(b"x" * 32, "bob", tokens.UNSUBSCRIBE, 2000.0),
        "other purpose": tokens.make(SECRET, "bob", "accept-offer", 2000.0),
        "changed payload": tokens.make(SECRET, "bobby", tokens.UNSUBSCRIBE, 2000.0
                                       ).split(".")[0] + "." + signature,
        "changed signature": body + "." + ("A" if signature[0] != "A" else "B") + signature[1:],
        "no signature": body,
        "empty": "",
        "long": "A" * 5000 + "." + signature,
    }[forge]
    with pytest.raises(Forbidden):
        tokens.check(SECRET, forged, tokens.UNSUBSCRIBE, 1000.0)
    assert tokens.check(SECRET, good, tokens.UNSUBSCRIBE, 1000.0) == "bob"  # control
