# SPDX-License-Identifier: GPL-3.0-or-later
"""Telling a phone's rollback of a copy from the recipient's own edits (pure, plain data).

Alice's number went from ...0155 to ...0166; the server wrote ...0166 into
Bob's copy.  A client that saves without If-Match may write the old card
back; Bob may also edit the card on purpose.  Only the first is ``behind``,
and merging the written view again puts exactly it right.
"""
from __future__ import annotations

import datetime

from radicale_plugin.consent.decisions import in_first_share
from radicale_plugin.vcard.merge import Previous, merge
from radicale_plugin.delivery.rollback import Stale, stale_values
from radicale_plugin.vcard.codec import parse_card
from radicale_plugin.vcard.view import DEFAULT_SHARED_FIELDS, Entry, View

REGION = "US"
OLD, NEW = "+1 202 555 0155", "+1 202 555 0166"


def view(number: str, name: str = "Alice Archer", fields=DEFAULT_SHARED_FIELDS) -> View:
    return View((Entry("FN", name), Entry("N", "Archer;Alice;;;"),
                 Entry("TEL", number, ("cell",)), Entry("EMAIL", "alice@example.org")), fields)


def card(*lines: str) -> str:
    return "\r\n".join(("BEGIN:VCARD", "VERSION:3.0", "UID:bobs-card-for-alice") + lines
                       + ("END:VCARD", ""))


WRITTEN = view(NEW)
# what is provably Alice's: both numbers were in her view (and written into this copy)
PREVIOUS = Previous(WRITTEN.entries, frozenset(view(OLD).values(REGION) | WRITTEN.values(REGION)))
AS_WRITTEN = card("FN:Ally", "N:Archer;Alice;;;", "NICKNAME:Sis", "TEL;TYPE=CELL:" + NEW,
                  "TEL;TYPE=WORK:+1 202 555 0777", "EMAIL:alice@example.org",
                  "NOTE:met at the climbing gym")


def stale(text: str, written: View = WRITTEN, previous: Previous = PREVIOUS) -> list[Stale]:
    return stale_values(parse_card(text), written, previous, REGION)


def test_the_copy_as_written_is_not_behind():
    assert stale(AS_WRITTEN) == []


def test_an_older_number_of_the_owner_back_in_place_of_the_written_one_is_a_rollback():
    rolled = AS_WRITTEN.replace(NEW, OLD)
    assert stale(rolled) == [Stale("TEL", "tel:+12025550155")]
    # written in another spelling it is the same number
    assert stale(AS_WRITTEN.replace(NEW, "(202) 555-0155")) == [Stale("TEL", "tel:+12025550155")]


def test_the_same_merge_puts_a_rollback_right_and_keeps_the_recipients_lines():
    rolled = parse_card(AS_WRITTEN.replace(NEW, OLD).replace(
        "NOTE:met at the climbing gym", "NOTE:new note typed on the old copy"))
    repaired = merge(rolled, WRITTEN, PREVIOUS, REGION)
    text = repaired.serialize()
    assert NEW in text and OLD not in text
    for kept in ("FN:Ally", "NICKNAME:Sis", "+1 202 555 0777", "NOTE:new note typed"):
        assert kept in text
    assert stale_values(repaired, WRITTEN, PREVIOUS, REGION) == []


def test_deliberate_edits_of_the_recipient_are_not_behind():
    # a number Alice never had, in place of the written one
    assert stale(AS_WRITTEN.replace(NEW, "+1 202 555 0999")) == []
    # the written number deleted, his own note and nickname changed
    assert stale(AS_WRITTEN.replace("TEL;TYPE=CELL:%s\r\n" % NEW, "")
                 .replace("NICKNAME:Sis", "NICKNAME:Al").replace("climbing gym", "pool")) == []
    # his own name for her
    assert stale(AS_WRITTEN.replace("FN:Ally", "FN:Mom")) == []


def test_an_older_name_of_the_owners_is_a_rollback_but_not_a_name_she_never_had():
    written = view(NEW, "Alice Smith")
    previous = Previous(written.entries, frozenset(
        PREVIOUS.values | {("FN", "Alice Archer"), ("FN", "Alice Smith")}))
    copy = AS_WRITTEN.replace("FN:Ally", "FN:Alice Smith")
    assert stale(copy, written, previous) == []
    assert stale(copy.replace("Alice Smith", "Alice Archer"), written, previous) == [
        Stale("FN", "Alice Archer")]
    assert stale(copy.replace("Alice Smith", "Ally"), written, previous) == []


def test_fields_the_owner_does_not_share_are_not_looked_at():
    only_names = view(NEW, fields=("FN", "N"))
    assert stale(AS_WRITTEN.replace(NEW, OLD), only_names) == []


def test_a_value_the_merge_would_keep_is_never_reported():
    # a view without FN (FN is required on a card): the merge never removes it
    written = View((Entry("TEL", NEW, ("cell",)),), ("FN", "TEL"))
    previous = Previous(written.entries, frozenset({("FN", "Ally"), ("TEL", "tel:+12025550166")}))
    copy = AS_WRITTEN
    assert merge(parse_card(copy), written, previous, REGION).serialize().count("FN:Ally") == 1
    assert stale(copy, written, previous) == []


def test_an_owners_first_share_is_one_change_for_one_day():
    start = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc)
    first = (4, start.isoformat())
    assert in_first_share(first, 4, start + datetime.timedelta(hours=23))
    assert not in_first_share(first, 5, start + datetime.timedelta(minutes=1))
    assert not in_first_share(first, 4, start + datetime.timedelta(days=1, seconds=1))
    assert not in_first_share((4, "not a time"), 4, start)
