# SPDX-License-Identifier: GPL-3.0-or-later
"""The e-mail telling a recipient what waits for them, pure: plain text, English.

Nothing of a card reaches the message but the owner's display name, made harmless by
:func:`display_name` (one line, no URL, address or domain, at most
:data:`NAME_LENGTH` characters): a card is written by its owner, and an e-mail from
this server must not carry their links or text to a recipient.  Every link is this
server's own, built from its base URL (``mecard_public_url``, or the URL the
recipient's own requests reach it at) and the owner's account name: the offer's page
(which asks for a button press: mail scanners open links, so a link alone never
accepts or refuses anything), the history, the settings, and the one-click
unsubscribe link, also in ``List-Unsubscribe`` with ``List-Unsubscribe-Post``
(RFC 8058).  From, To, Date and Message-ID are the sender's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from radicale_plugin.index.records import EVENT_CHANGED, EVENT_OFFER_DUE

#: Longest display name shown, in characters.
NAME_LENGTH = 60

#: Pages the links lead to (below the server's base URL).
PAGES = "/.web/mecard"

# a word that is or holds a URL, an address, a domain name or an IP address
_LINKISH = re.compile(r"(?i)[a-z][a-z0-9+.-]*:\S|www|@|/|\\|\.[a-z]{2,}|\d\.\d|\.\S*\.|"
                      r"xn--|&#|%[0-9a-f]{2}")


def display_name(text: str | None) -> str:
    """The owner's display name as a message may show it: printable, one line, without any
    word that looks like a link, address or domain, at most :data:`NAME_LENGTH` long."""
    if not text:
        return ""
    # control characters, line and paragraph separators, bidi overrides: spaces
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    words = [w for w in flat.split() if not _LINKISH.search(w)]
    name = " ".join(words)
    if len(name) > NAME_LENGTH:
        name = name[:NAME_LENGTH - 1].rstrip() + "…"
    return name


def _account(user: str) -> str:
    return "".join(ch for ch in user if ch.isprintable() and not ch.isspace())[:100]


@dataclass(frozen=True)
class Item:
    """One line of the message: an owner and what waits (an event kind)."""

    owner: str      # account name
    name: str       # display name as on the card (made harmless here)
    kind: str


@dataclass(frozen=True)
class Mail:
    """What the message says; the sender adds From, To, Date and Message-ID."""

    subject: str
    body: str
    headers: dict[str, str]


def who(item: Item) -> str:
    """``Alice Archer (alice)``, or the account name alone."""
    name, account = display_name(item.name), _account(item.owner)
    return "%s (%s)" % (name, account) if name and name != account else account


def links(base: str, owner: str | None = None) -> dict[str, str]:
    """The pages a message links to, under the server's ``base`` URL."""
    root = base.rstrip("/") + PAGES
    out = {"settings": root + "/settings", "updates": root + "/updates"}
    if owner is not None:
        out["offer"] = "%s/updates/%s" % (root, quote(owner, safe=""))
        out["history"] = "%s/history?owner=%s" % (root, quote(owner, safe=""))
    return out


def compose(recipient: str, items: list[Item], base: str, token: str,
            server_name: str) -> Mail:
    """The message telling ``recipient`` of ``items`` (one line per owner and kind)."""
    seen: set[tuple[str, bool]] = set()
    offers: list[Item] = []
    changes: list[Item] = []
    for item in items:
        changed = item.kind == EVENT_CHANGED
        if (item.owner, changed) in seen:
            continue  # five edits of one owner: one line
        seen.add((item.owner, changed))
        (changes if changed else offers).append(item)
    server = display_name(server_name) or "radicale-mecard"
    unsubscribe = "%s%s/unsubscribe/%s" % (base.rstrip("/"), PAGES, token)
    lines = ["Hello %s," % _account(recipient), ""]
    if offers:
        lines += ["%s shared %s changed card with you. Nothing changes in your address book "
                  "until you open the page and choose; opening it changes nothing." % (
                      "Somebody" if len(offers) == 1 else "%d people" % len(offers),
                      "a" if len(offers) == 1 else "their"), ""]
        for item in offers:
            what = ("a change you postponed is back and waits for your answer"
                    if item.kind == EVENT_OFFER_DUE else "a change waits for your answer")
            lines += ["* %s: %s" % (who(item), what), "  %s" % links(base, item.owner)["offer"],
                      ""]
    if changes:
        lines += ["Applied to your cards without asking (you accept these people's changes):",
                  ""]
        for item in changes:
            lines += ["* %s" % who(item), "  %s" % links(base, item.owner)["history"], ""]
    lines += ["You get these e-mails because of your notification settings:",
              links(base)["settings"],
              "To stop them (one click, no password needed):", unsubscribe, "",
              "-- ", server]
    if len(offers) == 1:
        subject = "%s has a card update for you" % who(offers[0])
    elif offers:
        subject = "%d card updates wait for you at %s" % (len(offers), server)
    else:
        subject = "Cards of %d %s were updated at %s" % (
            len(changes), "person" if len(changes) == 1 else "people", server)
    return Mail(subject, "\n".join(lines) + "\n",
                {"List-Unsubscribe": "<%s>" % unsubscribe,
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                 "Auto-Submitted": "auto-generated"})
