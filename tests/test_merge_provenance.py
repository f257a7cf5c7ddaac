# SPDX-License-Identifier: GPL-3.0-or-later
"""The merge replaces only what is provably the owner's (:class:`Previous`), pure.

``Previous.values`` are the (field, compare key) pairs the server ever wrote
into this copy and the owner's earlier values (numbers and e-mails only if
verified for the owner: the delivery layer filters them before the merge);
``Previous.written`` the views written there, used to follow parameter changes.
"""

from __future__ import annotations

import pytest

from radicale_plugin.vcard.matching import phone_key
from radicale_plugin.vcard.merge import Previous, merge
from radicale_plugin.vcard.codec import Card, Line, parse_card
from radicale_plugin.vcard.view import Entry, View

REGION = "US"
FIELDS = ("FN", "N", "TEL", "EMAIL")
A, B, C = "+1 202 555 0111", "+1 202 555 0122", "+1 202 555 0133"
OWN = "+1 202 555 0777"   # the recipient's own number for the owner (work)


def owner_view(*numbers: str, fields: tuple[str, ...] = FIELDS, withdrawn: tuple[str, ...] = (),
               email: str = "alice@example.org", nickname: str = "") -> View:
    entries = [Entry("FN", "Alice Archer"), Entry("N", "Archer;Alice;;;")]
    entries += [Entry("TEL", n, ("cell",)) for n in numbers]
    entries += [Entry("EMAIL", email, ("internet",))] if email else []
    entries += [Entry("NICKNAME", nickname)] if nickname else []
    return View(tuple(e for e in entries if e.name in fields), fields, withdrawn)


def values(*views: View) -> frozenset[tuple[str, str]]:
    return frozenset(v for view in views for v in view.values(REGION))


def card(*lines: str, version: str = "3.0") -> Card:
    return parse_card("\r\n".join(["BEGIN:VCARD", "VERSION:" + version, "UID:bobs-card"]
                                  + list(lines) + ["END:VCARD"]) + "\r\n")


def numbers(copy: Card) -> list[str]:
    """The copy's numbers as keys, in card order."""
    return [phone_key(ln.value, REGION) or "" for ln in copy.get("TEL")]


def key(number: str) -> str:
    return phone_key(number, REGION) or ""


BOBS_LINES = ("FN:Ally", "N:;Ally;;;", "NICKNAME:Sis", "TEL;TYPE=WORK:%s" % OWN,
              "EMAIL:ally@work.example", "NOTE:met at the climbing gym")


# -- (a) the owner's earlier number on the recipient's own card ------------------------

@pytest.mark.parametrize("written_a, version", [
    ("TEL;TYPE=CELL:(202) 555-0111", "3.0"),
    ("TEL:+1-202-555-0111", "3.0"),
    ("TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0111", "4.0"),
])
def test_an_earlier_number_proven_the_owners_is_replaced_on_the_recipients_own_card(
        written_a, version):
    # alice's number went A -> B -> C (each verified), then she targets bob, whose own
    # card for her still has A: nothing was ever written there by the server
    bobs = card(*BOBS_LINES, written_a, version=version)
    history = [owner_view(A), owner_view(B), owner_view(C)]
    out = merge(bobs, history[-1], Previous((), values(*history)), REGION)
    assert numbers(out) == [key(OWN), key(C)]


def test_an_earlier_number_not_proven_the_owners_stays_beside_the_new_one():
    # A never was verified for alice (so the delivery layer leaves it out of the values):
    # it may be anybody's number, so it stays
    bobs = card(*BOBS_LINES, "TEL;TYPE=CELL:(202) 555-0111")
    out = merge(bobs, owner_view(C), Previous((), values(owner_view(B), owner_view(C))), REGION)
    assert sorted(numbers(out)) == sorted([key(OWN), key(A), key(C)])
    assert "TEL;TYPE=CELL:(202) 555-0111" in out.serialize()  # byte for byte


def test_a_number_the_server_once_wrote_into_this_copy_is_replaced_even_if_never_verified():
    # written long ago (an unverified claim then, or by version 1), not in the last view
    copy = card(*BOBS_LINES, "TEL;TYPE=CELL:%s" % A)
    last = owner_view(B)
    out = merge(copy, owner_view(C), Previous(last.entries, values(owner_view(A), last)), REGION)
    assert numbers(out) == [key(OWN), key(C)]


def test_an_earlier_email_proven_the_owners_is_replaced_whatever_its_case():
    bobs = card(*BOBS_LINES, "EMAIL:ALICE@Old.Example")
    old, new = owner_view(C, email="alice@old.example"), owner_view(C, email="alice@new.example")
    out = merge(bobs, new, Previous((), values(old, new)), REGION)
    assert [ln.value for ln in out.get("EMAIL")] == ["ally@work.example", "alice@new.example"]


@pytest.mark.parametrize("on_card, proven, kept", [
    ("Al", True, "Ace"),      # the owner's earlier nickname follows the owner
    ("Al", False, "Al"),      # not provably hers: the recipient's wins
    ("Sis", True, "Sis"),     # the recipient's own name for her always wins
])
def test_a_single_valued_field_follows_the_owner_only_from_a_proven_value(on_card, proven, kept):
    bobs = card("FN:Ally", "NICKNAME:%s" % on_card, "TEL:%s" % A)
    fields = FIELDS + ("NICKNAME",)
    old, new = owner_view(A, fields=fields, nickname="Al"), owner_view(A, fields=fields,
                                                                       nickname="Ace")
    out = merge(bobs, new, Previous((), values(old, new) if proven else values(new)), REGION)
    assert [ln.value for ln in out.get("NICKNAME")] == [kept]


# -- (c) a client that saves stale copies without If-Match ------------------------------

def test_a_client_saving_stale_copies_over_updates_never_piles_up_numbers():
    """50 rounds: the server writes a new number; the client, one sync behind, saves over it.

    Each round the recipient's client PUTs (without If-Match) the copy as it synced
    it before the server's write, with an edit of its own: the copy falls back to the
    previous number.  The next update must replace that stale number, not add beside it.
    """
    def number(i: int) -> str:
        return "+1 202 555 %04d" % (200 + i)

    written: set[tuple[str, str]] = set()   # every value the server wrote (set_intent)
    delivered: View | None = None
    copy = card(*BOBS_LINES)
    synced = copy
    for i in range(50):
        new = owner_view(number(i))
        previous = Previous(delivered.entries if delivered else (), frozenset(written))
        written |= new.values(REGION)   # recorded before the write
        updated = merge(copy, new, previous, REGION)
        delivered = new
        assert numbers(updated) == [key(OWN), key(number(i))], i
        assert merge(updated, new, Previous(new.entries, frozenset(written)), REGION
                     ).serialize() == updated.serialize()
        # the client saves what it synced before this write, with its own edit
        stale = Card([ln if ln.name != "NOTE" else Line("NOTE", "edited in round %d" % i)
                      for ln in synced.lines])
        synced, copy = updated, stale
        assert len(copy.get("TEL")) <= 2, i
    assert delivered is not None
    final = merge(copy, owner_view(C), Previous(delivered.entries, frozenset(written)), REGION)
    assert numbers(final) == [key(OWN), key(C)]
    assert final.get("NOTE")[0].value == "edited in round 49"
    assert [ln.value for ln in final.get("NICKNAME")] == ["Sis"]


def test_the_stale_copy_scenario_is_real_when_only_the_last_written_view_is_known():
    """Without the values ever written (version 1 knew only the last view) numbers pile up."""
    copy, synced, delivered = card(*BOBS_LINES), card(*BOBS_LINES), None
    for i in range(5):
        new = owner_view("+1 202 555 %04d" % (200 + i))
        updated = merge(copy, new, Previous(delivered.entries if delivered else ()), REGION)
        delivered, synced, copy = new, updated, synced
    assert len(copy.get("TEL")) > 2  # what the accumulated values above prevent


# -- what is not the owner's, or not touched ----------------------------------------------

def test_the_recipients_own_values_stay_whatever_the_owner_does():
    bobs = card(*BOBS_LINES, "TEL;TYPE=CELL:%s" % A, "EMAIL:alice@example.org")
    past = values(owner_view(A), owner_view(B))
    for new in (owner_view(B), owner_view(), owner_view(email=""),
                View((), (), FIELDS + ("NICKNAME", "NOTE"))):
        out = merge(bobs, new, Previous(owner_view(A).entries, past | values(new)), REGION)
        text = out.serialize()
        for own in BOBS_LINES:
            assert own in text, (new, own)


def test_fields_the_owner_stopped_sharing_without_withdrawing_are_left_alone():
    fields = FIELDS + ("NICKNAME",)
    before = owner_view(A, fields=fields, nickname="Al")
    copy = merge(card("FN:Ally", "TEL;TYPE=WORK:%s" % OWN), before, Previous(), REGION)
    assert [ln.value for ln in copy.get("EMAIL")] == ["alice@example.org"]
    # the owner now shares only FN, N and TEL; her new e-mail and nickname are not sent
    now = owner_view(B, fields=("FN", "N", "TEL"))
    out = merge(copy, now, Previous(before.entries, values(before, now)), REGION)
    assert [ln.value for ln in out.get("EMAIL")] == ["alice@example.org"]
    assert [ln.value for ln in out.get("NICKNAME")] == ["Al"]
    assert numbers(out) == [key(OWN), key(B)]


def test_withdrawn_fields_lose_the_owners_values_but_keep_fn_n_and_the_recipients_own():
    fields = FIELDS + ("NICKNAME",)
    shared = owner_view(A, fields=fields, nickname="Al")
    copy = merge(card("FN:Alice Archer", "N:Archer;Alice;;;", "TEL;TYPE=WORK:%s" % OWN,
                      "EMAIL:ally@work.example", "NOTE:met at the climbing gym"),
                 shared, Previous(), REGION)
    withdraw_all = View((), (), tuple(sorted(fields)))
    out = merge(copy, withdraw_all, Previous(shared.entries, values(shared)), REGION)
    assert [ln.value for ln in out.get("FN")] == ["Alice Archer"]      # the card stays valid
    assert [ln.value for ln in out.get("N")] == ["Archer;Alice;;;"]
    assert numbers(out) == [key(OWN)]
    assert [ln.value for ln in out.get("EMAIL")] == ["ally@work.example"]
    assert out.get("NICKNAME") == []
    assert [ln.value for ln in out.get("NOTE")] == ["met at the climbing gym"]


def test_withdrawing_one_field_removes_its_values_and_updates_the_others():
    copy = merge(card("FN:Ally", "TEL;TYPE=WORK:%s" % OWN, "EMAIL:ally@work.example"),
                 owner_view(A), Previous(), REGION)
    now = owner_view(B, fields=("FN", "N", "TEL"), withdrawn=("EMAIL",))
    out = merge(copy, now, Previous(owner_view(A).entries, values(owner_view(A), now)), REGION)
    assert [ln.value for ln in out.get("EMAIL")] == ["ally@work.example"]
    assert numbers(out) == [key(OWN), key(B)]
    assert [ln.value for ln in out.get("FN")] == ["Ally"]


# -- idempotence ------------------------------------------------------------------------

SCENARIOS = {
    "update": (owner_view(A), owner_view(B)),
    "stale number": (owner_view(A), owner_view(C)),
    "unshare": (owner_view(A), owner_view(B, fields=("FN", "N", "TEL"))),
    "withdraw one": (owner_view(A), owner_view(B, fields=("FN", "N", "TEL"),
                                               withdrawn=("EMAIL",))),
    "withdraw all": (owner_view(A), View((), (), FIELDS)),
    "no numbers": (owner_view(A, B), owner_view()),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_merging_the_same_change_again_changes_nothing(name):
    old, new = SCENARIOS[name]
    bobs = card(*BOBS_LINES, "TEL;TYPE=CELL:(202) 555-0111", "TEL:%s" % A,
                "EMAIL:Alice@Example.org")
    once = merge(bobs, new, Previous(old.entries, values(old)), REGION)
    # again with what was known before, and with what is known after the write
    assert merge(once, new, Previous(old.entries, values(old)), REGION
                 ).serialize() == once.serialize()
    assert merge(once, new, Previous(new.entries, values(old, new)), REGION
                 ).serialize() == once.serialize()
