# SPDX-License-Identifier: GPL-3.0-or-later
"""The contract of :class:`radicale_plugin.index.SharingIndex`: every backend passes these tests.

Each test gets a fresh, empty index from every factory in ``BACKENDS`` (SQLite, and
PostgreSQL on the throwaway cluster of ``tests/postgres.py``) and every backend passes
the whole file unchanged: nothing here looks behind the contract, but for the few tests
at the end that look at SQLite itself.  A second index object on the same database
(:func:`reopen`) stands for another process.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from radicale_plugin import index as idx
from radicale_plugin.index import (Change, Code, HistoryEntry, IndexedCard, Intent, Job, Link,
                                   Offer, SharingIndex)
from radicale_plugin.index.postgres import PostgresIndex
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.vcard.view import DEFAULT_SHARED_FIELDS, Entry, View

REGION = "US"
A, B, C = "tel:+12025550111", "tel:+12025550122", "tel:+12025550133"
MAIL = "mailto:alice@example.org"


def sqlite_index(request, folder: Path, number: int) -> SharingIndex:
    folder.mkdir(parents=True, exist_ok=True)
    return SQLiteIndex(str(folder / ("x%d.sqlite" % number)))


class EmptiedDatabases:
    """Databases of the session's PostgreSQL cluster, made and migrated once, emptied for
    each test: a fresh database per test (CREATE DATABASE, even from a migrated template)
    costs ~60 ms and a fresh schema migrated ~70 ms, emptying one ~20 ms.  The first
    test's index migrates each; ``test_postgres_*`` below test migrations on fresh ones."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.dsns: list[str] = []
        self._emptying = ""

    def index(self, number: int) -> PostgresIndex:
        while len(self.dsns) <= number:
            self.dsns.append(self.cluster.new_database("contract"))
        ix = PostgresIndex(self.dsns[number])
        db = ix.db
        if not self._emptying:  # the tables are those of the first database migrated
            self._emptying = "".join(
                ['DELETE FROM "%s";' % t for (t,) in db.rows(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'schema_version' ORDER BY tablename")]
                + ['ALTER SEQUENCE "%s" RESTART;' % q for (q,) in db.rows(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = "
                    "current_schema() ORDER BY sequencename")])
        with db.pool.connection() as conn:
            # one round trip; a test that failed with a transaction still open in a
            # thread fails the next one clearly, instead of hanging it
            conn.execute("BEGIN; SET LOCAL lock_timeout = '10s';" + self._emptying + "COMMIT")
        return ix


@pytest.fixture(scope="session")
def postgres_databases(postgres) -> EmptiedDatabases:
    return EmptiedDatabases(postgres)


def postgres_index(request, folder: Path, number: int) -> SharingIndex:
    return request.getfixturevalue("postgres_databases").index(number)


#: One factory per backend: the test's request, a folder and a number in, a fresh empty
#: index out (the number tells a test's second fresh index from its first).
BACKENDS: list = [pytest.param(sqlite_index, id="sqlite"),
                  pytest.param(postgres_index, id="postgresql")]


@pytest.fixture(params=BACKENDS)
def fresh(request, tmp_path) -> Iterator[Callable[[], SharingIndex]]:
    """Makes fresh, empty indexes of the backend (each its own database); closes them."""
    factory = request.param
    made: list[SharingIndex] = []

    def make() -> SharingIndex:
        made.append(factory(request, tmp_path, len(made)))
        return made[-1]
    try:
        yield make
    finally:
        for index in reversed(made):
            index.close()


@pytest.fixture
def backend(fresh) -> SharingIndex:
    return fresh()


def reopen(ix: SharingIndex) -> SharingIndex:
    """Another index object on the database of ``ix``: what another process sees."""
    if isinstance(ix, SQLiteIndex):
        return SQLiteIndex(ix.db.path)
    assert isinstance(ix, PostgresIndex)
    return PostgresIndex(ix.db.dsn)


def view(number: str, name: str = "Alice Archer") -> View:
    return View((Entry("FN", name), Entry("TEL", number, ("cell",))), DEFAULT_SHARED_FIELDS)


def change(ix: SharingIndex, number: str, user: str = "alice") -> Job:
    """The owner's me card now carries ``number``: the queued job of that change."""
    v = view(number)
    assert ix.owners.record_view(user, v, v, v.values(REGION))
    return [j for j in ix.outbox.pending_jobs(1000) if j.owner == user][-1]


def planned(ix: SharingIndex, *recipients: str, number: str = "+1 202 555 0111") -> Job:
    """Alice's change planned for ``recipients``; returns the (now planned) job."""
    job = change(ix, number)
    ix.outbox.plan(job, {r: ["user:%s" % r] for r in recipients})
    return job


def finish(ix: SharingIndex, owner: str, recipient: str, state: str, **fields) -> None:
    found = ix.outbox.delivery(owner, recipient)
    assert found is not None
    found.state = state
    for name, value in fields.items():
        setattr(found, name, value)
    ix.outbox.finish(found)


def states(ix: SharingIndex, owner: str = "alice") -> dict[str, str]:
    return {d.recipient: d.state for d in ix.outbox.deliveries(owner)}


def plan_next(ix: SharingIndex, *recipients: str) -> None:
    """Plan the oldest queued job for ``recipients``."""
    ix.outbox.plan(ix.outbox.pending_jobs(1)[0], {r: ["user:%s" % r] for r in recipients})


def card(book: str, href: str, *keys: str, is_group: bool = False) -> IndexedCard:
    return IndexedCard(book, href, "uid-" + href, is_group, frozenset(keys))


# -- owners -----------------------------------------------------------------------

def test_a_user_who_never_configured_sharing_has_the_defaults(backend):
    owner = backend.owners.get("nobody")
    assert (owner.user, owner.book, owner.href, owner.uid) == ("nobody", None, None, None)
    assert owner.shared_fields == list(DEFAULT_SHARED_FIELDS)
    assert (owner.rules, owner.withdrawn_fields, owner.notices) == ([], [], [])
    assert (owner.view, owner.card_view, owner.seq, owner.discoverability) == (None, None, 0, None)
    assert backend.owners.with_me_card() == []
    assert backend.owners.past_values("nobody") == set()


def test_set_me_card_designates_and_none_clears_it(backend):
    backend.owners.set_me_card("alice", "alice/contacts", "alice.vcf", "alice-me")
    backend.owners.set_rules("alice", ["all"])
    owner = backend.owners.get("alice")
    assert (owner.book, owner.href, owner.uid) == ("alice/contacts", "alice.vcf", "alice-me")
    assert [o.user for o in backend.owners.with_me_card()] == ["alice"]

    backend.owners.set_me_card("alice", None, None, None)
    assert backend.owners.with_me_card() == []
    assert backend.owners.get("alice").rules == ["all"]  # the other settings stay


def test_settings_are_kept_apart_per_user_and_per_setting(backend):
    backend.owners.set_shared_fields("alice", ["FN", "TEL"], ["EMAIL"])
    backend.owners.set_rules("alice", ["group:Family", "user:bob"])
    backend.owners.set_discoverability("alice", "nobody")
    backend.owners.set_rules("bob", ["all"])
    alice = backend.owners.get("alice")
    assert (alice.shared_fields, alice.withdrawn_fields) == (["FN", "TEL"], ["EMAIL"])
    assert alice.rules == ["group:Family", "user:bob"]
    assert alice.discoverability == "nobody"
    bob = backend.owners.get("bob")
    assert (bob.rules, bob.shared_fields, bob.discoverability) == (
        ["all"], list(DEFAULT_SHARED_FIELDS), None)


def test_record_view_queues_a_change_only_when_a_view_changed(backend):
    first = view("+1 202 555 0111")
    assert backend.owners.record_view("alice", first, first, first.values(REGION))
    assert [(j.owner, j.seq, j.only, j.withdraw) for j in backend.outbox.pending_jobs(10)] == [
        ("alice", 1, None, False)]
    assert backend.owners.view_at("alice", 1) == first

    # the same views again: nothing to send
    assert not backend.owners.record_view("alice", first, first, first.values(REGION))
    assert backend.owners.get("alice").seq == 1 and backend.outbox.queued("alice") == 1

    second = view("+1 202 555 0122")
    assert backend.owners.record_view("alice", second, second, second.values(REGION))
    owner = backend.owners.get("alice")
    assert (owner.seq, owner.view, owner.card_view) == (2, second, second)
    assert [j.seq for j in backend.outbox.pending_jobs(10)] == [2]  # it replaces the first
    assert backend.owners.view_at("alice", 2) == second


@pytest.mark.parametrize("dropped", [True, False], ids=["key-dropped", "key-kept"])
def test_a_change_of_the_me_card_alone_is_a_new_change_too(backend, dropped):
    # a number verified for somebody else is dropped from the view: if only a change of
    # the view counted, the owner would learn from ``seq`` that the number is someone's
    base = view("+1 202 555 0111")
    backend.owners.record_view("alice", base, base, base.values(REGION))
    card_view = View(base.entries + (Entry("TEL", "+1 202 555 0122", ("work",)),), base.fields)
    sent = base if dropped else card_view
    assert backend.owners.record_view("alice", card_view, sent, sent.values(REGION))

    owner = backend.owners.get("alice")
    assert (owner.seq, owner.card_view, owner.view) == (2, card_view, sent)
    assert [(j.seq, j.only) for j in backend.outbox.pending_jobs(10)] == [(2, None)]
    assert backend.owners.view_at("alice", 2) == sent
    # and recording the same pair again is no change
    assert not backend.owners.record_view("alice", card_view, sent, sent.values(REGION))
    assert backend.owners.get("alice").seq == 2 and backend.outbox.queued("alice") == 1


def test_me_card_gone_stops_every_delivery_and_drops_offers_but_refusals(backend):
    job = planned(backend, "bob", "carol", "dave", "erin", "frank", "gina", "hank")
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    finish(backend, "alice", "carol", idx.OFFERED)
    finish(backend, "alice", "erin", idx.FAILED, error="no address book")
    finish(backend, "alice", "frank", idx.BLOCKED)
    finish(backend, "alice", "gina", idx.WITHDRAWING)
    finish(backend, "alice", "hank", idx.WITHDRAWN)
    backend.consent.put_offer(Offer("alice", "carol", job.seq))
    backend.consent.put_offer(Offer("alice", "dave", job.seq, idx.OFFER_POSTPONED,
                                    until="2099-01-01T00:00:00+00:00"))
    backend.consent.put_offer(Offer("alice", "frank", job.seq, idx.OFFER_REFUSED,
                                    refused_seq=job.seq))
    change(backend, "+1 202 555 0122")          # queued, not planned yet
    bob_job = change(backend, "+1 202 555 0102", user="bob")
    backend.consent.put_offer(Offer("bob", "carol", bob_job.seq))

    assert backend.owners.record_view("alice", None, None, ())

    assert states(backend) == {**{r: idx.STOPPED for r in ("bob", "carol", "dave", "erin",
                                                           "frank")},
                               "gina": idx.WITHDRAWING, "hank": idx.WITHDRAWN}
    alice = backend.owners.get("alice")
    assert alice.view is None and alice.card_view is None
    assert backend.outbox.queued("alice") == 0
    # a refusal stays the recipient's answer; what waited for an answer is gone
    assert [(o.recipient, o.state) for o in backend.consent.offers_from("alice")] == [
        ("frank", idx.OFFER_REFUSED)]
    # other owners are not touched
    assert backend.outbox.queued("bob") == 1
    assert [o.owner for o in backend.consent.offers_for("carol")] == ["bob"]
    assert not backend.owners.record_view("alice", None, None, ())  # already gone
    # a new me card is a new change, after the old ones
    assert change(backend, "+1 202 555 0133").seq == alice.seq + 1


def test_me_card_gone_every_copy_it_reached_can_be_withdrawn(backend):
    # STOPPED means "no longer a target (or no me card)": POST /me-card {"path": null,
    # "withdraw": true} and POST /withdraw {"recipients": "all"} after deleting the me
    # card withdraw the stopped deliveries, so copies already delivered must be among them
    job = planned(backend, "bob", "carol", "erin")
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    finish(backend, "alice", "carol", idx.WITHDRAWN)
    finish(backend, "alice", "erin", idx.FAILED, error="the address book is gone")
    backend.owners.record_view("alice", None, None, ())
    assert sorted(backend.outbox.withdraw("alice", None)) == ["bob", "erin"]
    assert states(backend) == {"bob": idx.WITHDRAWING, "carol": idx.WITHDRAWN,
                               "erin": idx.WITHDRAWING}


def test_past_values_accumulate_for_good(backend):
    change(backend, "+1 202 555 0111")
    change(backend, "+1 202 555 0122")
    backend.owners.record_view("alice", None, None, ())
    change(backend, "+1 202 555 0133")
    assert backend.owners.past_values("alice") == {
        ("FN", "Alice Archer"), ("TEL", A), ("TEL", B), ("TEL", C)}
    assert backend.owners.past_values("bob") == set()


def test_a_notice_is_kept_once_and_only_the_newest_twenty(backend):
    backend.owners.add_notice("alice", "first")
    backend.owners.add_notice("alice", "second")
    backend.owners.add_notice("alice", "first")   # repeated: moved to the end
    assert backend.owners.get("alice").notices == ["second", "first"]
    assert backend.owners.get("bob").notices == []

    # a flood of notices (keys moving back and forth) cannot grow the owner record
    for n in range(30):
        backend.owners.add_notice("alice", "moved %d" % n)
    assert backend.owners.get("alice").notices == ["moved %d" % n for n in range(10, 30)]
    backend.owners.add_notice("alice", "moved 15")
    assert backend.owners.get("alice").notices == (
        ["moved %d" % n for n in range(10, 30) if n != 15] + ["moved 15"])


def test_discoverability_of_names_only_the_users_who_chose_one(backend):
    backend.owners.set_discoverability("alice", "nobody")
    backend.owners.set_discoverability("bob", "everyone")
    backend.owners.set_discoverability("bob", "contacts")   # replaced
    backend.owners.set_rules("carol", ["all"])              # an owner who never chose
    many = ["user%04d" % n for n in range(1200)]
    for user in many[::100]:
        backend.owners.set_discoverability(user, "everyone")
    assert backend.owners.discoverability_of(["alice", "bob", "carol", "dave"]) == {
        "alice": "nobody", "bob": "contacts"}
    assert backend.owners.discoverability_of(["alice", "alice", "al", "Alice"]) == {
        "alice": "nobody"}
    assert backend.owners.discoverability_of(many + ["bob"]) == {
        **{u: "everyone" for u in many[::100]}, "bob": "contacts"}
    assert backend.owners.discoverability_of([]) == {}


def test_the_me_card_stat_is_remembered_per_owner(backend):
    for user in ("alice", "bob"):
        backend.owners.set_me_card(user, user + "/contacts", user + ".vcf", user + "-me")
    assert backend.owners.get("alice").card_stat == ""
    backend.owners.set_card_stat("alice", "812:1764115039123456789")
    backend.owners.set_card_stat("bob", "90:1")
    backend.owners.set_card_stat("bob", "91:2")
    assert backend.owners.get("alice").card_stat == "812:1764115039123456789"
    assert {o.user: o.card_stat for o in backend.owners.with_me_card()} == {
        "alice": "812:1764115039123456789", "bob": "91:2"}
    backend.owners.set_rules("alice", ["all"])             # other settings leave it alone
    assert backend.owners.get("alice").card_stat == "812:1764115039123456789"
    assert backend.owners.get("carol").card_stat == ""


# -- keys -------------------------------------------------------------------------

def keys_of(ix: SharingIndex, user: str) -> dict[str, tuple[bool, str]]:
    return {k.key: (k.on_card, k.state) for k in ix.keys.of_user(user)}


def test_claims_are_unverified_until_verified(backend):
    backend.keys.set_claims("alice", [A, MAIL])
    assert keys_of(backend, "alice") == {A: (True, "unverified"), MAIL: (True, "unverified")}
    assert backend.keys.holders([A, MAIL]) == {}
    assert backend.keys.verified("alice") == set()
    assert backend.keys.claimed([A, MAIL, B]) == {A, MAIL}
    assert backend.keys.claimants([A, MAIL, B]) == {A: {"alice"}, MAIL: {"alice"}}


def test_set_claims_keeps_verified_keys_off_the_card_and_drops_unverified_ones(backend):
    backend.keys.set_claims("alice", [A, MAIL])
    assert backend.keys.verify("alice", A) is None
    backend.keys.set_claims("alice", [B])
    assert keys_of(backend, "alice") == {A: (False, "verified"), B: (True, "unverified")}
    assert backend.keys.verified("alice") == {A}
    assert backend.keys.holders([A]) == {A: "alice"}
    # only keys on a me card are claims
    assert backend.keys.claimed([A, B, MAIL]) == {B}
    assert backend.keys.claimants([A, B, MAIL]) == {B: {"alice"}}


def test_a_key_verified_by_a_new_holder_moves_to_them(backend):
    backend.keys.set_claims("alice", [A])
    backend.keys.verify("alice", A)
    backend.keys.set_claims("mallory", [A])
    assert backend.keys.holders([A]) == {A: "alice"}  # a claim takes nothing

    assert backend.keys.verify("bob", A) == "alice"
    assert backend.keys.holders([A]) == {A: "bob"}
    assert keys_of(backend, "alice") == {A: (True, "moved")}
    assert backend.keys.verified("alice") == set()
    assert backend.keys.verified("bob") == {A}
    assert keys_of(backend, "mallory") == {A: (True, "unverified")}
    # the moved-away holder still claims it; the new holder never put it on a me card
    assert backend.keys.claimants([A]) == {A: {"alice", "mallory"}}

    assert backend.keys.verify("bob", A) is None      # already the holder
    assert backend.keys.verify("alice", A) == "bob"   # and back
    assert backend.keys.holders([A]) == {A: "alice"}
    assert keys_of(backend, "alice") == {A: (True, "verified")}
    assert keys_of(backend, "bob")[A][1] == "moved"


def test_unverify_ends_a_verification(backend):
    backend.keys.set_claims("alice", [A])
    backend.keys.verify("alice", A)
    backend.keys.verify("alice", B)  # verified, never on the card
    backend.keys.unverify("alice", A)
    backend.keys.unverify("alice", B)
    assert keys_of(backend, "alice") == {A: (True, "unverified")}  # still claimed
    assert backend.keys.holders([A, B]) == {}
    assert backend.keys.verified("alice") == set()
    backend.keys.unverify("bob", A)  # nothing to end: no error


def test_claimants_name_every_user_whose_me_card_carries_a_key(backend):
    backend.keys.set_claims("alice", [A, MAIL])
    backend.keys.set_claims("mallory", [A, B])
    backend.keys.set_claims("bob", [B])
    backend.keys.verify("bob", B)
    assert backend.keys.claimants([A, B, C, MAIL]) == {
        A: {"alice", "mallory"}, B: {"bob", "mallory"}, MAIL: {"alice"}}
    assert backend.keys.claimants([C]) == {} and backend.keys.claimants([]) == {}
    backend.keys.set_claims("mallory", [])      # taken off the me card: no longer a claim
    assert backend.keys.claimants([A, B]) == {A: {"alice"}, B: {"bob"}}


def test_holders_claimed_claimants_and_verified_answer_many_keys(backend):
    many = ["tel:+1202555%04d" % i for i in range(1200)]
    backend.keys.set_claims("alice", many[:700])
    backend.keys.set_claims("carol", many[600:1100])
    for key in many[::100]:
        backend.keys.verify("bob", key)
    assert backend.keys.claimed(many) == set(many[:1100])
    claimants = backend.keys.claimants(many)
    assert claimants == {k: {"alice"} for k in many[:600]} | {
        k: {"alice", "carol"} for k in many[600:700]} | {k: {"carol"} for k in many[700:1100]}
    assert backend.keys.holders(many) == {k: "bob" for k in many[::100]}
    assert backend.keys.verified("bob") == set(many[::100])


def test_codes_are_stored_replaced_counted_and_dropped_per_user_and_key(backend):
    later = time.time() + 600
    backend.keys.put_code(Code("alice", A, "digest-1", later, 0))
    backend.keys.put_code(Code("bob", A, "digest-b", later, 0))
    backend.keys.count_attempt("alice", A)
    backend.keys.count_attempt("alice", A)
    assert backend.keys.code("alice", A) == Code("alice", A, "digest-1", later, 2)

    backend.keys.put_code(Code("alice", A, "digest-2", later + 1, 0))  # a new code
    assert backend.keys.code("alice", A) == Code("alice", A, "digest-2", later + 1, 0)
    backend.keys.drop_code("alice", A)
    assert backend.keys.code("alice", A) is None
    assert backend.keys.code("alice", B) is None
    assert backend.keys.code("bob", A) == Code("bob", A, "digest-b", later, 0)


def test_sends_are_counted_by_user_by_key_and_by_time(backend):
    now = time.time()
    backend.keys.record_send("alice", A, now - 100)
    backend.keys.record_send("alice", B, now - 50)
    backend.keys.record_send("bob", A, now - 10)
    assert backend.keys.sends_since(now - 200) == 3
    assert backend.keys.sends_since(now - 200, user="alice") == 2
    assert backend.keys.sends_since(now - 200, key=A) == 2
    assert backend.keys.sends_since(now - 200, user="alice", key=A) == 1
    assert backend.keys.sends_since(now - 60, user="alice") == 1
    assert backend.keys.sends_since(now - 5) == 0
    assert backend.keys.sends_since(now - 200, user="carol") == 0


def test_wrong_answers_are_counted_per_key_across_users_and_survive_the_guesser(backend):
    now = time.time()
    backend.keys.record_guess("mallory", A, now - 100)
    backend.keys.record_guess("mal2", A, now - 50)
    backend.keys.record_guess("mallory", B, now - 40)
    backend.keys.record_guess("mal3", A, now - 10)
    assert backend.keys.guess_times(A, now - 200) == [now - 100, now - 50, now - 10]
    assert backend.keys.guess_times(A, now - 60) == [now - 50, now - 10]
    assert backend.keys.guess_times(B, now - 200) == [now - 40]
    assert backend.keys.guess_times(C, now - 200) == []
    backend.keys.forget_user("mallory")  # the guesses were about the key, not the account
    assert len(backend.keys.guess_times(A, now - 200)) == 3


def test_new_claims_are_remembered_per_user_with_their_time(backend):
    now = time.time()
    backend.keys.record_claims("alice", [A, B], now - 100)
    backend.keys.record_claims("alice", [B, C], now - 10)   # B anew: its time moves
    backend.keys.record_claims("bob", [A], now - 5)
    assert backend.keys.claimed_since("alice", now - 200) == {A, B, C}
    assert backend.keys.claimed_since("alice", now - 50) == {B, C}
    assert backend.keys.claimed_since("bob", now - 200) == {A}
    assert backend.keys.claimed_since("carol", now - 200) == set()
    backend.keys.forget_user("alice")
    assert backend.keys.claimed_since("alice", now - 200) == set()
    assert backend.keys.claimed_since("bob", now - 200) == {A}


# -- the card-key index ------------------------------------------------------------

def test_a_card_is_put_read_replaced_and_removed(backend):
    backend.cards.put(card("bob/contacts", "x.vcf", A, MAIL))
    assert backend.cards.card("bob/contacts", "x.vcf") == card("bob/contacts", "x.vcf", A, MAIL)
    backend.cards.put(card("bob/contacts", "x.vcf", B, is_group=True))
    assert backend.cards.card("bob/contacts", "x.vcf") == card("bob/contacts", "x.vcf", B,
                                                               is_group=True)
    assert backend.cards.cards_with_keys("bob", [A, MAIL]) == []
    assert backend.cards.cards_with_keys("bob", [B]) == [
        card("bob/contacts", "x.vcf", B, is_group=True)]
    backend.cards.remove("bob/contacts", "x.vcf")
    assert backend.cards.card("bob/contacts", "x.vcf") is None
    assert backend.cards.cards_with_keys("bob", [A, B, MAIL]) == []


def test_cards_with_keys_looks_only_in_the_users_own_books(backend):
    for book in ("bob/contacts", "bob/work", "al/contacts", "alice/contacts", "bobby/contacts"):
        backend.cards.put(card(book, "a.vcf", A))
    backend.cards.put(card("bob/contacts", "b.vcf", B, MAIL))
    found = backend.cards.cards_with_keys("bob", [A, MAIL])
    assert sorted((c.book, c.href) for c in found) == [
        ("bob/contacts", "a.vcf"), ("bob/contacts", "b.vcf"), ("bob/work", "a.vcf")]
    assert {c.user for c in found} == {"bob"}
    assert [c.book for c in backend.cards.cards_with_keys("al", [A])] == ["al/contacts"]
    assert backend.cards.cards_with_keys("bob", []) == []
    assert backend.cards.cards_with_keys("bob", [C]) == []
    assert backend.cards.cards_with_keys("carol", [A, B, MAIL]) == []
    assert backend.cards.cards_with_keys("bob", [MAIL]) == [card("bob/contacts", "b.vcf", B, MAIL)]


def test_a_cards_name_categories_members_and_version_round_trip(backend):
    person = IndexedCard("bob/contacts", "ally.vcf", "ally-uid", False, frozenset({A, MAIL}),
                         name='Ally "Sis" Ärcher, Jr.', version="4.0",
                         categories=frozenset({"family", "école", "strasse"}))  # case-folded
    group = IndexedCard("bob/contacts", "fam.vcf", "fam-uid", True, frozenset(), name="Family",
                        members=("urn:uuid:zed", "urn:uuid:ally-uid", "mailto:x@example.org"),
                        version="3.0")
    plain = card("bob/work", "w.vcf", B)       # no name, categories, members or version
    backend.cards.put(person)
    backend.cards.replace_book("bob/contacts", [person, group], 5)
    backend.cards.put(plain)
    assert backend.cards.card("bob/contacts", "ally.vcf") == person
    assert backend.cards.card("bob/contacts", "fam.vcf") == group   # members keep their order
    assert backend.cards.card("bob/work", "w.vcf") == plain
    assert sorted(backend.cards.cards_of("bob"), key=lambda c: (c.book, c.href)) == [
        person, group, plain]
    assert backend.cards.cards_with_keys("bob", [MAIL]) == [person]

    # replacing a card replaces all of it
    renamed = IndexedCard("bob/contacts", "ally.vcf", "ally-uid", False, frozenset({A}),
                          name="Ally")
    backend.cards.put(renamed)
    found = backend.cards.card("bob/contacts", "ally.vcf")
    assert found == renamed and (found.categories, found.members, found.version) == (
        frozenset(), (), "")


def test_cards_of_lists_every_card_of_every_book_of_the_user_only(backend):
    mine = [card("bob/contacts", "a.vcf", A), card("bob/contacts", "g.vcf", is_group=True),
            card("bob/work", "b.vcf")]
    for c in mine + [card(book, "x.vcf", A) for book in ("bo/contacts", "bobby/contacts",
                                                         "Bob/contacts", "carol/contacts")]:
        backend.cards.put(c)
    assert sorted(backend.cards.cards_of("bob"), key=lambda c: (c.book, c.href)) == mine
    assert [c.book for c in backend.cards.cards_of("bo")] == ["bo/contacts"]
    assert backend.cards.cards_of("erin") == []
    backend.cards.remove("bob/contacts", "a.vcf")
    backend.cards.remove_under("bob/work")
    assert backend.cards.cards_of("bob") == [mine[1]]


@pytest.mark.parametrize("user, others", [
    ("al", ["alice/contacts", "alx/contacts", "a/contacts"]),
    ("alice", ["al/contacts", "alice2/contacts", "Alice/contacts", "ALICE/work"]),
    ("a_", ["ab/contacts", "a_b/contacts"]),      # LIKE-style wildcards are plain text
    ("a%", ["abc/contacts", "a/contacts"]),
])
def test_books_of_lists_the_users_recorded_books_only(backend, user, others):
    mine = ["%s/contacts" % user, "%s/work" % user]
    backend.cards.set_book_mtime(mine[1], 3)                        # an empty book
    backend.cards.replace_book(mine[0], [card(mine[0], "a.vcf", A)], 4)
    for book in others:
        backend.cards.replace_book(book, [card(book, "a.vcf", A)], 5)
    assert backend.cards.books_of(user) == mine
    backend.cards.remove_under(mine[1])
    assert backend.cards.books_of(user) == [mine[0]]
    assert backend.cards.books_of("nobody") == []


def test_book_version_is_the_version_most_cards_of_the_book_use(backend):
    def versioned(book: str, href: str, version: str) -> IndexedCard:
        return IndexedCard(book, href, href, False, frozenset(), version=version)

    assert backend.cards.book_version("bob/contacts") is None           # unknown
    backend.cards.replace_book("bob/contacts", [], 1)
    assert backend.cards.book_version("bob/contacts") is None           # empty
    backend.cards.replace_book("bob/contacts", [
        versioned("bob/contacts", "a.vcf", "4.0"), versioned("bob/contacts", "b.vcf", "3.0"),
        versioned("bob/contacts", "c.vcf", "4.0")], 2)
    for href in ("x.vcf", "y.vcf", "z.vcf"):    # another book's cards do not count
        backend.cards.put(versioned("bob/work", href, "3.0"))
    assert backend.cards.book_version("bob/contacts") == "4.0"
    assert backend.cards.book_version("bob/work") == "3.0"
    for href in ("d.vcf", "e.vcf"):
        backend.cards.put(versioned("bob/contacts", href, "3.0"))
    assert backend.cards.book_version("bob/contacts") == "3.0"


def test_href_of_uid_finds_the_card_with_that_uid_in_that_book(backend):
    backend.cards.put(IndexedCard("bob/contacts", "a.vcf", "uid-1", False, frozenset()))
    backend.cards.put(IndexedCard("bob/work", "b.vcf", "uid-2", False, frozenset()))
    assert backend.cards.href_of_uid("bob/contacts", "uid-1") == "a.vcf"
    assert backend.cards.href_of_uid("bob/contacts", "uid-2") is None   # another book's
    assert backend.cards.href_of_uid("bob/contacts", "UID-1") is None
    assert backend.cards.href_of_uid("carol/contacts", "uid-1") is None
    backend.cards.put(IndexedCard("bob/contacts", "a.vcf", "uid-3", False, frozenset()))
    assert backend.cards.href_of_uid("bob/contacts", "uid-1") is None   # its UID changed
    assert backend.cards.href_of_uid("bob/contacts", "uid-3") == "a.vcf"
    backend.cards.remove("bob/contacts", "a.vcf")
    assert backend.cards.href_of_uid("bob/contacts", "uid-3") is None


def test_users_knowing_counts_cards_but_not_copies_created_for_the_one_asking(backend):
    """Nor cards linked to another owner: they stand for that owner, whatever values the
    owner put on them (an owner's claims are plain text there)."""
    # alice's keys A and MAIL in other users' books
    backend.cards.put(card("bob/contacts", "own.vcf", A))              # bob's own card
    backend.cards.put(card("carol/contacts", "copy.vcf", A, MAIL))     # created for alice
    backend.links.put(Link("alice", "carol", "carol/contacts", "copy.vcf", idx.LINK_CREATED, "t"))
    backend.cards.put(card("dave/contacts", "copy.vcf", MAIL))         # created, then mine too
    backend.links.put(Link("alice", "dave", "dave/contacts", "copy.vcf", idx.LINK_CREATED, "t"))
    backend.cards.put(card("dave/work", "own.vcf", MAIL))
    for user, made_by in (("erin", idx.LINK_ACCEPTED), ("frank", idx.LINK_VERIFIED),
                          ("gina", idx.LINK_MIGRATED)):                # linked, but theirs
        backend.cards.put(card(user + "/contacts", "c.vcf", A))
        backend.links.put(Link("alice", user, user + "/contacts", "c.vcf", made_by, "t"))
    backend.cards.put(card("hank/contacts", "z.vcf", A))               # zoe's copy, with A
    backend.links.put(Link("zoe", "hank", "hank/contacts", "z.vcf", idx.LINK_CREATED, "t"))
    backend.cards.put(card("ivan/contacts", "other.vcf", B))           # another key

    everyone = ["bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy"]
    assert backend.cards.users_knowing([A, MAIL], everyone, "alice") == {
        "bob", "dave", "erin", "frank", "gina"}
    assert backend.cards.users_knowing([A, MAIL], ["carol", "ivan"], "alice") == set()
    assert backend.cards.users_knowing([A], ["bob", "hank"], "zoe") == {"bob"}
    assert backend.cards.users_knowing([A, MAIL], ["carol", "erin"], "zoe") == set()
    assert backend.cards.users_knowing([MAIL], ["dave", "bob"], "alice") == {"dave"}
    assert backend.cards.users_knowing([], everyone, "alice") == set()
    assert backend.cards.users_knowing([A], [], "alice") == set()

    many = ["user%04d" % n for n in range(1200)]
    for user in many[::100]:
        backend.cards.put(card(user + "/contacts", "a.vcf", A))
    assert backend.cards.users_knowing([A, B, C], many, "alice") == set(many[::100])


@pytest.mark.parametrize("user, others", [
    ("al", ["alice/contacts", "alx/contacts"]),
    ("alice", ["Alice/contacts", "ALICE/work"]),   # user names differ by case too
    ("a_", ["ab/contacts", "a_b/contacts"]),      # LIKE-style wildcards are plain text
    ("a%", ["abc/contacts"]),
])
def test_remove_under_a_user_removes_their_books_only(backend, user, others):
    mine = ["%s/contacts" % user, "%s/work" % user]
    for book in mine + others:
        backend.cards.put(card(book, "a.vcf", A))
        backend.cards.set_book_mtime(book, 7)
    backend.cards.remove_under(user)
    for book in mine:
        assert backend.cards.card(book, "a.vcf") is None
    for book in others:
        assert backend.cards.card(book, "a.vcf") is not None
    assert sorted(backend.cards.book_mtimes()) == sorted(others)
    assert backend.cards.cards_with_keys(user, [A]) == []


def test_remove_under_a_book_removes_that_book_only(backend):
    for book in ("alice/contacts", "alice/contacts2", "alice/work"):
        backend.cards.put(card(book, "a.vcf", A))
        backend.cards.set_book_mtime(book, 1)
    backend.cards.remove_under("alice/contacts")
    assert backend.cards.card("alice/contacts", "a.vcf") is None
    assert backend.cards.card("alice/contacts2", "a.vcf") is not None
    assert backend.cards.card("alice/work", "a.vcf") is not None
    assert sorted(backend.cards.book_mtimes()) == ["alice/contacts2", "alice/work"]


def test_replace_book_swaps_one_books_cards_and_records_its_mtime(backend):
    backend.cards.put(card("bob/contacts", "old.vcf", A))
    backend.cards.put(card("bob/work", "keep.vcf", A))
    backend.cards.replace_book("bob/contacts", [card("bob/contacts", "new.vcf", B),
                                                card("bob/contacts", "g.vcf", is_group=True)], 42)
    assert backend.cards.card("bob/contacts", "old.vcf") is None
    assert backend.cards.card("bob/contacts", "new.vcf") == card("bob/contacts", "new.vcf", B)
    assert backend.cards.card("bob/contacts", "g.vcf") is not None
    assert backend.cards.card("bob/work", "keep.vcf") is not None
    assert sorted((c.book, c.href) for c in backend.cards.cards_with_keys("bob", [A, B])) == [
        ("bob/contacts", "new.vcf"), ("bob/work", "keep.vcf")]
    assert backend.cards.book_mtimes() == {"bob/contacts": 42}


def test_book_mtimes_and_the_built_flag(backend):
    assert backend.cards.book_mtimes() == {} and not backend.cards.is_built()
    backend.cards.set_book_mtime("bob/contacts", 1)
    backend.cards.set_book_mtime("bob/contacts", 2)
    backend.cards.set_book_mtime("carol/contacts", 3)
    assert backend.cards.book_mtimes() == {"bob/contacts": 2, "carol/contacts": 3}
    backend.cards.set_built()
    backend.cards.set_built()
    assert backend.cards.is_built()


# -- links ---------------------------------------------------------------------------

def link(owner: str, recipient: str, href: str, book: str = "") -> Link:
    return Link(owner, recipient, book or "%s/contacts" % recipient, href, idx.LINK_CREATED,
                "2026-01-01T00:00:00+00:00")


def test_a_link_is_found_by_pair_and_by_card(backend):
    made = link("alice", "bob", "ally.vcf")
    backend.links.put(made)
    assert backend.links.get("alice", "bob") == made
    assert backend.links.at("bob/contacts", "ally.vcf") == made
    assert backend.links.get("bob", "alice") is None
    assert backend.links.at("bob/contacts", "other.vcf") is None


def test_one_owner_per_card(backend):
    backend.links.put(link("alice", "bob", "ally.vcf"))
    backend.links.put(link("carol", "bob", "c.vcf"))
    with pytest.raises(ValueError):
        backend.links.put(link("dave", "bob", "ally.vcf"))
    with pytest.raises(ValueError):       # nor by moving a pair's link onto it
        backend.links.put(link("carol", "bob", "ally.vcf"))
    assert backend.links.at("bob/contacts", "ally.vcf") == link("alice", "bob", "ally.vcf")
    assert backend.links.get("dave", "bob") is None
    assert backend.links.get("carol", "bob") == link("carol", "bob", "c.vcf")  # left as it was


def test_of_owner_lists_every_link_of_an_owners_copies(backend):
    backend.links.put(link("alice", "bob", "a.vcf"))
    backend.links.put(link("alice", "carol", "a.vcf", "carol/work"))
    backend.links.put(link("dave", "bob", "d.vcf"))
    backend.links.put(link("alicia", "bob", "x.vcf"))
    assert sorted(backend.links.of_owner("alice"), key=lambda k: k.recipient) == [
        link("alice", "bob", "a.vcf"), link("alice", "carol", "a.vcf", "carol/work")]
    assert backend.links.of_owner("dave") == [link("dave", "bob", "d.vcf")]
    assert backend.links.of_owner("bob") == []
    backend.links.remove("alice", "bob")
    assert backend.links.of_owner("alice") == [link("alice", "carol", "a.vcf", "carol/work")]


def test_a_pairs_new_link_replaces_its_old_one(backend):
    backend.links.put(link("alice", "bob", "ally.vcf"))
    backend.links.put(Link("alice", "bob", "bob/work", "a.vcf", idx.LINK_ACCEPTED, "t"))
    assert backend.links.get("alice", "bob") == Link("alice", "bob", "bob/work", "a.vcf",
                                                     idx.LINK_ACCEPTED, "t")
    assert backend.links.at("bob/contacts", "ally.vcf") is None
    backend.links.put(link("carol", "bob", "ally.vcf"))  # the card is free again
    backend.links.put(link("carol", "bob", "ally.vcf"))  # the same link again is fine


def test_links_under_a_card_a_book_or_a_user(backend):
    backend.links.put(link("alice", "bob", "a.vcf"))
    backend.links.put(link("carol", "bob", "c.vcf", "bob/work"))
    backend.links.put(link("alice", "bobby", "a.vcf"))
    backend.links.put(link("alice", "bo", "a.vcf"))
    backend.links.put(link("alice", "Bob", "a.vcf"))      # user names differ by case too
    backend.links.put(link("dave", "bob", "d.vcf", "bob/contacts2"))

    def pairs(path: str) -> list[tuple[str, str, str]]:
        return sorted((k.owner, k.book, k.href) for k in backend.links.under(path))

    assert pairs("bob/contacts/a.vcf") == [("alice", "bob/contacts", "a.vcf")]
    assert pairs("bob/contacts") == [("alice", "bob/contacts", "a.vcf")]
    assert pairs("bob/work") == [("carol", "bob/work", "c.vcf")]
    assert pairs("bob") == [("alice", "bob/contacts", "a.vcf"), ("carol", "bob/work", "c.vcf"),
                            ("dave", "bob/contacts2", "d.vcf")]
    assert pairs("bo") == [("alice", "bo/contacts", "a.vcf")]
    assert pairs("Bob") == [("alice", "Bob/contacts", "a.vcf")]
    assert pairs("bob/contacts/none.vcf") == [] and pairs("erin") == []


def test_a_link_follows_its_card_and_ends(backend):
    backend.links.put(link("alice", "bob", "a.vcf"))
    backend.links.move("bob/contacts", "a.vcf", "bob/work", "b.vcf")
    moved = backend.links.get("alice", "bob")
    assert (moved.book, moved.href) == ("bob/work", "b.vcf")
    assert backend.links.at("bob/contacts", "a.vcf") is None
    backend.links.move("bob/contacts", "none.vcf", "bob/work", "x.vcf")  # not linked: no-op
    assert backend.links.at("bob/work", "x.vcf") is None
    backend.links.remove("alice", "bob")
    assert backend.links.get("alice", "bob") is None
    assert backend.links.under("bob") == []


def test_a_link_keeps_the_uid_of_its_card_through_a_move(backend):
    made = Link("alice", "bob", "bob/contacts", "a.vcf", idx.LINK_CREATED, "t", uid="u-1")
    backend.links.put(made)
    assert backend.links.get("alice", "bob").uid == "u-1"
    assert backend.links.at("bob/contacts", "a.vcf").uid == "u-1"
    backend.links.move("bob/contacts", "a.vcf", "bob/work", "b.vcf")
    assert backend.links.get("alice", "bob").uid == "u-1"
    backend.links.put(link("carol", "bob", "c.vcf"))  # a link whose card's UID is not known
    assert backend.links.get("carol", "bob").uid == ""


def test_a_me_card_never_holds_a_link(backend):
    backend.owners.set_me_card("bob", "bob/contacts", "bob.vcf", "bob-uid")
    with pytest.raises(ValueError):
        backend.links.put(link("alice", "bob", "bob.vcf"))
    assert backend.links.get("alice", "bob") is None
    backend.links.put(link("alice", "bob", "ally.vcf"))  # another card of his: fine
    backend.links.put(link("bob", "carol", "bob.vcf"))    # the same href in another's book too
    assert backend.links.at("carol/contacts", "bob.vcf") is not None


def test_links_astray_are_those_whose_card_is_gone_or_another(backend):
    def uid_link(owner: str, href: str, uid: str) -> Link:
        return Link(owner, "bob", "bob/contacts", href, idx.LINK_CREATED, "t", uid=uid)
    backend.cards.put(IndexedCard("bob/contacts", "same.vcf", "u-same", False, frozenset()))
    backend.cards.put(IndexedCard("bob/contacts", "other.vcf", "mom", False, frozenset()))
    backend.cards.put(IndexedCard("bob/contacts", "unknown.vcf", "x", False, frozenset()))
    backend.links.put(uid_link("alice", "same.vcf", "u-same"))       # its card: kept
    backend.links.put(uid_link("carol", "other.vcf", "u-carol"))     # another card there
    backend.links.put(uid_link("dave", "gone.vcf", "u-dave"))        # no card there
    backend.links.put(uid_link("erin", "unknown.vcf", ""))           # UID not known: kept
    backend.links.put(uid_link("frank", "lost.vcf", ""))             # ... unless no card
    assert [(k.owner, k.href) for k in backend.links.astray()] == [
        ("carol", "other.vcf"), ("dave", "gone.vcf"), ("frank", "lost.vcf")]
    backend.links.remove("carol", "bob")
    backend.links.remove("dave", "bob")
    backend.links.remove("frank", "bob")
    assert backend.links.astray() == []


# -- consent -------------------------------------------------------------------------

def test_policies_are_set_replaced_and_removed_per_recipient(backend):
    backend.consent.set_policy("bob", "alice", "auto")
    backend.consent.set_policy("bob", "*", "ask")
    backend.consent.set_policy("bob", "carol", "block")
    backend.consent.set_policy("carol", "alice", "block")
    backend.consent.set_policy("bob", "alice", "block")
    backend.consent.set_policy("bob", "carol", None)
    backend.consent.set_policy("bob", "dave", None)  # nothing to remove
    assert backend.consent.policies("bob") == {"alice": "block", "*": "ask"}
    assert backend.consent.policies("carol") == {"alice": "block"}
    assert backend.consent.policies("dave") == {}


def test_a_replaced_offer_keeps_when_it_was_first_offered(backend):
    backend.consent.put_offer(Offer("alice", "bob", 1, book="bob/contacts", href="a.vcf"))
    first = backend.consent.offer("alice", "bob")
    assert first is not None and first.first_offered and first.created
    assert (first.seq, first.state, first.book, first.href) == (1, idx.OFFER_PENDING,
                                                                "bob/contacts", "a.vcf")

    backend.consent.put_offer(Offer("alice", "bob", 2, idx.OFFER_POSTPONED, None, None,
                                    first_offered="2099-01-01T00:00:00+00:00",
                                    until="2030-01-01T00:00:00+00:00", refused_seq=1))
    again = backend.consent.offer("alice", "bob")
    assert (again.seq, again.state, again.book, again.href, again.until, again.refused_seq) == (
        2, idx.OFFER_POSTPONED, None, None, "2030-01-01T00:00:00+00:00", 1)
    assert again.first_offered == first.first_offered


def test_offers_for_a_recipient_and_from_an_owner(backend):
    backend.consent.put_offer(Offer("alice", "bob", 1))
    backend.consent.put_offer(Offer("alice", "carol", 1))
    backend.consent.put_offer(Offer("dave", "bob", 3))
    assert sorted(o.owner for o in backend.consent.offers_for("bob")) == ["alice", "dave"]
    assert sorted(o.recipient for o in backend.consent.offers_from("alice")) == ["bob", "carol"]
    backend.consent.drop_offer("alice", "bob")
    backend.consent.drop_offer("alice", "erin")  # none: no error
    assert backend.consent.offer("alice", "bob") is None
    assert [o.owner for o in backend.consent.offers_for("bob")] == ["dave"]
    assert [o.recipient for o in backend.consent.offers_from("alice")] == ["carol"]
    assert backend.consent.offers_for("erin") == [] and backend.consent.offers_from("erin") == []


def an_hour_ago() -> str:
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    return when.isoformat(timespec="seconds")


def test_new_offers_since_counts_offers_to_recipients_who_had_none(backend):
    backend.consent.put_offer(Offer("alice", "bob", 1))
    backend.consent.put_offer(Offer("alice", "bob", 2))        # replaced: not a new offer
    backend.consent.put_offer(Offer("alice", "bob", 2, idx.OFFER_REFUSED, refused_seq=2))
    backend.consent.put_offer(Offer("alice", "carol", 2))
    backend.consent.put_offer(Offer("alice", "dave", 2, idx.OFFER_REFUSED))
    backend.consent.put_offer(Offer("erin", "bob", 1))
    assert backend.consent.new_offers_since("alice", an_hour_ago()) == 3
    assert backend.consent.new_offers_since("erin", an_hour_ago()) == 1
    assert backend.consent.new_offers_since("alice", "2999-01-01T00:00:00+00:00") == 0
    assert backend.consent.new_offers_since("frank", an_hour_ago()) == 0


def test_dropping_and_making_offers_again_cannot_reset_the_daily_limit(backend):
    # an owner could otherwise remove and re-add targets to offer again and again
    for recipient in ("bob", "carol"):
        backend.consent.put_offer(Offer("alice", recipient, 1))
    backend.consent.drop_offer("alice", "bob")
    assert backend.consent.new_offers_since("alice", an_hour_ago()) == 2
    backend.consent.put_offer(Offer("alice", "bob", 1))
    assert backend.consent.new_offers_since("alice", an_hour_ago()) == 3

    job = change(backend, "+1 202 555 0111")
    backend.outbox.plan(job, {})                 # every target removed: offers dropped
    assert backend.consent.offers_from("alice") == []
    assert backend.consent.new_offers_since("alice", an_hour_ago()) == 3
    for recipient in ("bob", "carol"):
        backend.consent.put_offer(Offer("alice", recipient, job.seq))
    assert backend.consent.new_offers_since("alice", an_hour_ago()) == 5


def test_offers_of_a_first_share_are_not_counted_and_the_log_is_purged_by_time(backend):
    backend.consent.put_offer(Offer("alice", "bob", 1), counted=False)
    backend.consent.put_offer(Offer("alice", "carol", 1))
    assert backend.consent.offer("alice", "bob") is not None
    assert backend.consent.new_offers_since("alice", an_hour_ago()) == 1
    oldest = backend.consent.oldest_new_offer_since("alice", an_hour_ago())
    assert oldest is not None and oldest >= an_hour_ago()
    assert backend.consent.oldest_new_offer_since("erin", an_hour_ago()) is None
    assert backend.consent.purge_offer_log(an_hour_ago()) == 0   # nothing that old
    assert backend.consent.purge_offer_log("2999-01-01T00:00:00+00:00") == 1
    assert backend.consent.new_offers_since("alice", "2000-01-01T00:00:00+00:00") == 0
    assert backend.consent.offer("alice", "carol") is not None   # the offers stay


def test_an_owners_first_share_is_recorded_once_and_forgotten_with_the_user(backend):
    assert backend.consent.first_share("alice") is None
    assert backend.consent.start_first_share("alice", 3, "2026-01-01T00:00:00+00:00") == (
        3, "2026-01-01T00:00:00+00:00")
    # a later change cannot start another one
    assert backend.consent.start_first_share("alice", 4, "2026-02-01T00:00:00+00:00") == (
        3, "2026-01-01T00:00:00+00:00")
    assert backend.consent.first_share("alice") == (3, "2026-01-01T00:00:00+00:00")
    assert backend.consent.first_share("bob") is None
    backend.consent.forget_user("alice")
    assert backend.consent.first_share("alice") is None


# -- the outbox ------------------------------------------------------------------------

def test_requeue_queues_the_current_view_again(backend):
    backend.outbox.requeue("alice")
    assert backend.outbox.pending_jobs(10) == []  # no view: nothing to send
    job = planned(backend, "bob")
    backend.outbox.requeue("alice")
    again = backend.outbox.pending_jobs(10)
    assert [(j.owner, j.seq, j.only, j.withdraw) for j in again] == [
        ("alice", job.seq, None, False)]
    assert again[0].id > job.id
    backend.outbox.requeue("alice", withdraw=True)
    jobs = backend.outbox.pending_jobs(10)
    assert [(j.owner, j.seq, j.only, j.withdraw) for j in jobs] == [
        ("alice", job.seq, None, True)]
    assert jobs[0].id > again[0].id and backend.outbox.queued("alice") == 1


def test_pending_jobs_are_the_oldest_first_up_to_the_limit(backend):
    for user, number in (("alice", "+1 202 555 0111"), ("bob", "+1 202 555 0102"),
                         ("carol", "+1 202 555 0103"), ("dave", "+1 202 555 0104")):
        change(backend, number, user=user)
    assert [(j.owner, j.seq) for j in backend.outbox.pending_jobs(3)] == [
        ("alice", 1), ("bob", 1), ("carol", 1)]
    # alice's newer change replaces her older one, and waits behind the others
    change(backend, "+1 202 555 0122")
    assert [(j.owner, j.seq) for j in backend.outbox.pending_jobs(10)] == [
        ("bob", 1), ("carol", 1), ("dave", 1), ("alice", 2)]
    assert backend.outbox.queued("alice") == 1 and backend.outbox.queued("bob") == 1


def test_restrict_narrows_only_the_owners_newest_queued_change(backend):
    first = change(backend, "+1 202 555 0111")
    change(backend, "+1 202 555 0102", user="bob")  # another owner's job
    backend.outbox.requeue("alice")                 # the same change again, for all targets
    backend.outbox.restrict("alice", ["bob", "carol"])

    jobs = [(j.owner, j.seq, j.only) for j in backend.outbox.pending_jobs(10)]
    assert jobs == [("alice", first.seq, None), ("bob", 1, None),
                    ("alice", first.seq, ["bob", "carol"])]
    assert backend.outbox.queued("alice") == 2
    assert backend.outbox.queued("alice", full_only=True) == 1
    assert backend.outbox.queued("bob", full_only=True) == 1

    backend.outbox.restrict("carol", ["bob"])       # nothing queued: nothing to narrow
    assert backend.outbox.queued("carol") == 0 and len(backend.outbox.pending_jobs(10)) == 3


def jobs_of(ix: SharingIndex) -> list[tuple[str, int, list[str] | None, bool]]:
    return [(j.owner, j.seq, j.only, j.withdraw) for j in ix.outbox.pending_jobs(100)]


def test_an_owners_newest_change_for_everyone_replaces_their_older_ones(backend):
    for user, number in (("alice", "+1 202 555 0111"), ("bob", "+1 202 555 0102"),
                         ("alice", "+1 202 555 0122")):
        v = view(number)
        backend.owners.record_view(user, v, v, v.values(REGION))
    backend.outbox.requeue("alice")
    backend.outbox.restrict("alice", ["carol"])            # newer than alice's newest full one
    v = view("+1 202 555 0103")
    backend.owners.record_view("carol", v, v, v.values(REGION))
    assert jobs_of(backend) == [("bob", 1, None, False), ("alice", 2, None, False),
                                ("alice", 2, ["carol"], False), ("carol", 1, None, False)]
    assert backend.outbox.queued("alice") == 2

    # a change for everyone replaces restricted ones too; other owners keep their place
    change(backend, "+1 202 555 0133")
    assert jobs_of(backend) == [("bob", 1, None, False), ("carol", 1, None, False),
                                ("alice", 3, None, False)]
    assert backend.outbox.queued("alice") == backend.outbox.queued("bob") == 1


def test_a_withdrawal_asked_by_a_replaced_change_carries_over_to_the_newest(backend):
    job = planned(backend, "bob", "carol")
    backend.outbox.requeue("bob", withdraw=True)           # bob has no view: nothing queued
    backend.outbox.requeue("alice", withdraw=True)         # e.g. carol removed, withdraw
    change(backend, "+1 202 555 0122")                     # then a new number for everyone
    v = view("+1 202 555 0102")
    backend.owners.record_view("dave", v, v, v.values(REGION))
    backend.outbox.requeue("dave", withdraw=True)           # another owner's withdrawal...
    backend.outbox.requeue("dave")                          # ...carries over to their own
    assert jobs_of(backend) == [("alice", job.seq + 1, None, True), ("dave", 1, None, True)]
    plan_next(backend, "bob")
    assert states(backend) == {"bob": idx.PENDING, "carol": idx.WITHDRAWING}

    # a withdrawal by the newest change for everyone is not undone by a restricted one
    backend.outbox.requeue("alice", withdraw=True)
    backend.outbox.requeue("alice")
    backend.outbox.restrict("alice", ["bob"])
    assert [j for j in jobs_of(backend) if j[0] == "alice"] == [
        ("alice", job.seq + 1, None, True), ("alice", job.seq + 1, ["bob"], False)]
    # nor does a change without withdrawal ever gain one
    backend.outbox.requeue("erin")
    change(backend, "+1 202 555 0133", user="frank")
    change(backend, "+1 202 555 0144", user="frank")
    assert [j for j in jobs_of(backend) if j[0] == "frank"] == [("frank", 2, None, False)]


def test_plan_makes_one_pending_delivery_per_target_and_drops_the_job(backend):
    job = change(backend, "+1 202 555 0111")
    backend.outbox.plan(job, {"bob": ["all (contact Bob)"], "carol": ["user:carol"]})
    assert backend.outbox.pending_jobs(10) == [] and backend.outbox.queued("alice") == 0
    bob = backend.outbox.delivery("alice", "bob")
    assert (bob.state, bob.wanted_seq, bob.delivered_seq, bob.reasons) == (
        idx.PENDING, job.seq, 0, ["all (contact Bob)"])
    assert (bob.delivered_view, bob.intent, bob.written_values) == (None, None, set())
    assert states(backend) == {"bob": idx.PENDING, "carol": idx.PENDING}
    assert {d.recipient for d in backend.outbox.pending_deliveries(10, time.time())} == {
        "bob", "carol"}


def test_a_copy_that_already_holds_the_change_is_not_made_pending_again(backend):
    job = planned(backend, "bob", "carol")
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    finish(backend, "alice", "carol", idx.FAILED, error="no address book")
    backend.outbox.requeue("alice")  # e.g. the targets changed, the view did not
    plan_next(backend, "bob", "carol")
    assert states(backend) == {"bob": idx.DELIVERED, "carol": idx.PENDING}
    assert backend.outbox.delivery("alice", "carol").error == ""

    newer = change(backend, "+1 202 555 0122")
    backend.outbox.plan(newer, {"bob": ["user:bob"]})
    bob = backend.outbox.delivery("alice", "bob")
    assert (bob.state, bob.wanted_seq, bob.delivered_seq) == (idx.PENDING, newer.seq, job.seq)


@pytest.mark.parametrize("withdraw", [False, True], ids=["stop", "withdraw"])
def test_recipients_no_longer_targeted_stop_or_are_withdrawn(backend, withdraw):
    job = planned(backend, "bob", "carol", "dave", "erin", "frank", "gina", "hank")
    finish(backend, "alice", "carol", idx.DELIVERED, delivered_seq=job.seq)
    finish(backend, "alice", "dave", idx.OFFERED)
    finish(backend, "alice", "erin", idx.BLOCKED)
    finish(backend, "alice", "frank", idx.STOPPED)        # left out by an earlier plan
    finish(backend, "alice", "gina", idx.WITHDRAWN)
    finish(backend, "alice", "hank", idx.WITHDRAWING)
    for recipient in ("bob", "dave"):
        backend.consent.put_offer(Offer("alice", recipient, job.seq))
    backend.consent.put_offer(Offer("alice", "carol", job.seq, idx.OFFER_POSTPONED,
                                    until="2099-01-01T00:00:00+00:00"))
    backend.consent.put_offer(Offer("alice", "erin", job.seq, idx.OFFER_REFUSED,
                                    refused_seq=job.seq))
    backend.consent.put_offer(Offer("zoe", "dave", 1))

    backend.outbox.requeue("alice", withdraw=withdraw)
    plan_next(backend, "bob")

    # withdrawing reaches copies that were only stopped before; nothing comes back to life
    gone = idx.WITHDRAWING if withdraw else idx.STOPPED
    assert states(backend) == {"bob": idx.PENDING, "carol": gone, "dave": gone, "erin": gone,
                               "frank": gone, "gina": idx.WITHDRAWN, "hank": idx.WITHDRAWING}
    # a pending or postponed offer goes with the target; a refusal stays the answer
    assert sorted((o.recipient, o.state) for o in backend.consent.offers_from("alice")) == [
        ("bob", idx.OFFER_PENDING), ("erin", idx.OFFER_REFUSED)]
    assert backend.consent.offer("zoe", "dave") is not None
    waiting = {d.recipient for d in backend.outbox.pending_deliveries(10, time.time())}
    assert waiting == ({"bob", "carol", "dave", "erin", "frank", "hank"} if withdraw
                       else {"bob", "hank"})


@pytest.mark.parametrize("withdraw", [False, True], ids=["stop", "withdraw"])
def test_a_plan_without_targets_leaves_every_recipient_out(backend, withdraw):
    planned(backend, "bob", "carol", "dave", "erin")
    finish(backend, "alice", "bob", idx.STOPPED)
    finish(backend, "alice", "carol", idx.WITHDRAWN)
    finish(backend, "alice", "dave", idx.WITHDRAWING)
    backend.outbox.requeue("alice", withdraw=withdraw)
    plan_next(backend)
    gone = idx.WITHDRAWING if withdraw else idx.STOPPED
    assert states(backend) == {"bob": gone, "carol": idx.WITHDRAWN,
                               "dave": idx.WITHDRAWING, "erin": gone}


def test_a_plan_for_chosen_recipients_leaves_the_others_alone(backend):
    job = change(backend, "+1 202 555 0111")
    backend.outbox.plan(job, {"bob": ["all"], "carol": ["all"]})
    finish(backend, "alice", "carol", idx.DELIVERED, delivered_seq=job.seq)
    for recipient in ("bob", "carol"):
        backend.consent.put_offer(Offer("alice", recipient, job.seq))
    carol_before = backend.outbox.delivery("alice", "carol")

    newer = change(backend, "+1 202 555 0122")
    backend.outbox.restrict("alice", ["bob", "dave"])
    only = backend.outbox.pending_jobs(1)[0]
    assert only.only == ["bob", "dave"]
    assert backend.outbox.queued("alice", full_only=True) == 0
    backend.outbox.plan(only, {"bob": ["chosen"], "dave": ["chosen"]})

    assert states(backend) == {"bob": idx.PENDING, "carol": idx.DELIVERED, "dave": idx.PENDING}
    bob = backend.outbox.delivery("alice", "bob")
    assert (bob.wanted_seq, bob.reasons) == (newer.seq, ["chosen"])
    assert backend.outbox.delivery("alice", "carol") == carol_before
    assert sorted(o.recipient for o in backend.consent.offers_from("alice")) == ["bob", "carol"]
    assert backend.outbox.queued("alice") == 0


def queue(ix: SharingIndex, limit: int = 100, now: float | None = None) -> list[tuple[str, str]]:
    """The waiting deliveries as the worker gets them."""
    found = ix.outbox.pending_deliveries(limit, time.time() if now is None else now)
    return [(d.owner, d.recipient) for d in found]


def test_deliveries_are_served_in_the_order_they_were_queued(backend):
    zoe = change(backend, "+1 202 555 0102", user="zoe")
    backend.outbox.plan(zoe, {"yan": ["all"]})
    planned(backend, "carol", "bob")
    assert queue(backend) == [("zoe", "yan"), ("alice", "bob"), ("alice", "carol")]
    assert queue(backend, 2) == [("zoe", "yan"), ("alice", "bob")]

    # planned again while waiting: keeps its place (though updated later)
    time.sleep(1.1)  # ISO times of "updated" have whole seconds
    backend.outbox.plan(change(backend, "+1 202 555 0103", user="zoe"), {"yan": ["all"]})
    assert backend.outbox.delivery("zoe", "yan").updated > backend.outbox.delivery(
        "alice", "bob").updated
    assert queue(backend) == [("zoe", "yan"), ("alice", "bob"), ("alice", "carol")]

    # waiting again after it was written: to the end
    finish(backend, "zoe", "yan", idx.DELIVERED, delivered_seq=2)
    backend.outbox.plan(change(backend, "+1 202 555 0104", user="zoe"), {"yan": ["all"]})
    assert queue(backend) == [("alice", "bob"), ("alice", "carol"), ("zoe", "yan")]
    # a new target of a later change: behind what already waits
    planned(backend, "carol", "bob", "abe", number="+1 202 555 0122")
    assert queue(backend) == [("alice", "bob"), ("alice", "carol"), ("zoe", "yan"),
                              ("alice", "abe")]
    # made pending again by its recipient: to the end
    finish(backend, "alice", "bob", idx.FAILED, error="not allowed")
    backend.outbox.reopen_for("bob", "alice", [idx.FAILED])
    assert queue(backend) == [("alice", "carol"), ("zoe", "yan"), ("alice", "abe"),
                              ("alice", "bob")]
    # a retry keeps its place, once due
    now = time.time()
    finish(backend, "alice", "carol", idx.PENDING, due=now + 60, error="busy")
    assert queue(backend, now=now) == [("zoe", "yan"), ("alice", "abe"), ("alice", "bob")]
    assert queue(backend, now=now + 61)[-1] == ("alice", "carol")   # the earliest due first


def test_deliveries_and_withdrawals_are_served_in_one_queue_order(backend):
    job = planned(backend, "bob", "carol", "dave", "erin")
    for recipient in ("carol", "dave", "erin"):
        finish(backend, "alice", recipient, idx.DELIVERED, delivered_seq=job.seq)
    backend.outbox.requeue("alice")
    plan_next(backend, "bob", "carol")                         # dave and erin stop
    assert backend.outbox.withdraw("alice", ["erin"]) == ["erin"]
    backend.outbox.plan(change(backend, "+1 202 555 0102", user="zoe"), {"yan": ["all"]})
    assert backend.outbox.withdraw("alice", ["dave"]) == ["dave"]
    # neither kind waits for the other to run dry: the order they were asked in
    assert queue(backend) == [("alice", "bob"), ("alice", "erin"),
                              ("zoe", "yan"), ("alice", "dave")]
    assert queue(backend, 2) == [("alice", "bob"), ("alice", "erin")]
    assert queue(backend, 3) == [("alice", "bob"), ("alice", "erin"), ("zoe", "yan")]

    # a plan that withdraws a left-out recipient puts it at the end
    backend.outbox.requeue("alice", withdraw=True)
    plan_next(backend, "bob")
    assert queue(backend) == [("alice", "bob"), ("alice", "erin"), ("zoe", "yan"),
                              ("alice", "dave"), ("alice", "carol")]
    # withdrawn, then targeted again: at the end too
    finish(backend, "alice", "erin", idx.WITHDRAWN)
    planned(backend, "bob", "erin", number="+1 202 555 0133")
    assert queue(backend) == [("alice", "bob"), ("zoe", "yan"), ("alice", "dave"),
                              ("alice", "carol"), ("alice", "erin")]


def test_a_large_plan_queues_every_target_once_and_planning_it_again_is_harmless(backend):
    names = ["user%04d" % n for n in range(1234)]
    job = change(backend, "+1 202 555 0111")
    backend.outbox.plan(job, {n: ["all"] for n in names})
    backend.outbox.plan(change(backend, "+1 202 555 0102", user="zoe"), {"yan": ["all"]})
    first = queue(backend, 2000)
    assert sorted(first[:-1]) == [("alice", n) for n in names] and first[-1] == ("zoe", "yan")
    assert backend.outbox.pending_jobs(10) == []

    # the same job again (e.g. after a crash between its parts): nothing moves or changes
    for n in names[:10]:
        finish(backend, "alice", n, idx.DELIVERED, delivered_seq=job.seq)
    backend.outbox.plan(job, {n: ["all"] for n in names})
    assert queue(backend, 2000) == first[10:]
    assert {d.recipient: (d.state, d.wanted_seq) for d in backend.outbox.deliveries("alice")} == {
        n: (idx.DELIVERED if i < 10 else idx.PENDING, job.seq) for i, n in enumerate(names)}
    assert backend.owners.view_at("alice", job.seq) == view("+1 202 555 0111")


def test_a_copy_written_moments_ago_waits_out_the_spacing(backend):
    job = planned(backend, "bob", "carol", "dave", "erin")
    now = time.time()
    written = {"bob": now - 3, "carol": now - 30, "dave": now - 3, "erin": now - 1}
    for recipient, at in written.items():
        finish(backend, "alice", recipient, idx.DELIVERED, delivered_seq=job.seq,
               delivered_at=at)
    backend.outbox.requeue("alice")                  # the same change: nothing to rewrite
    backend.outbox.plan(backend.outbox.pending_jobs(1)[0],
                        {r: ["all"] for r in written}, spacing=10)
    assert set(states(backend).values()) == {idx.DELIVERED}

    newer = change(backend, "+1 202 555 0122")
    backend.outbox.plan(newer, {"bob": ["all"], "carol": ["all"], "erin": ["all"]}, spacing=10)
    due = {d.recipient: d.due for d in backend.outbox.deliveries("alice")
           if d.state == idx.PENDING}
    assert due == {"bob": pytest.approx(now + 7), "carol": 0.0, "erin": pytest.approx(now + 9)}
    assert queue(backend, now=now) == [("alice", "carol")]
    assert queue(backend, now=now + 7.5) == [("alice", "carol"), ("alice", "bob")]  # by due
    finish(backend, "alice", "carol", idx.DELIVERED, delivered_seq=newer.seq, delivered_at=now)
    assert not backend.outbox.has_work(now) and backend.outbox.has_work(now + 7.5)
    assert backend.outbox.next_due() == pytest.approx(now + 7)

    # without spacing (or once it has passed) a copy is rewritten at once
    backend.outbox.plan(change(backend, "+1 202 555 0133"), {"bob": ["all"], "carol": ["all"]})
    assert {d.recipient: d.due for d in backend.outbox.pending_deliveries(10, now)} == {
        "bob": 0.0, "carol": 0.0}


def test_finish_stores_when_the_copy_was_written_and_a_new_plan_keeps_it(backend):
    job = planned(backend, "bob", "carol")
    assert backend.outbox.delivery("alice", "bob").delivered_at == 0.0
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq,
           delivered_at=1764115039.25)
    assert backend.outbox.delivery("alice", "bob").delivered_at == 1764115039.25
    assert {d.recipient: d.delivered_at for d in backend.outbox.deliveries("alice")} == {
        "bob": 1764115039.25, "carol": 0.0}

    in_hand = backend.outbox.delivery("alice", "carol")
    backend.outbox.plan(change(backend, "+1 202 555 0122"), {"bob": ["all"], "carol": ["all"]})
    in_hand.state, in_hand.delivered_at = idx.DELIVERED, 1764115040.5
    backend.outbox.finish(in_hand)                  # planned again meanwhile: not stored
    waiting = {d.recipient: (d.state, d.delivered_at)
               for d in backend.outbox.pending_deliveries(10, time.time())}
    assert waiting == {"bob": (idx.PENDING, 1764115039.25), "carol": (idx.PENDING, 0.0)}


def test_interrupted_lists_the_deliveries_with_an_intent(backend):
    assert backend.outbox.interrupted() == []
    planned(backend, "bob", "carol", "dave")
    zoe = change(backend, "+1 202 555 0102", user="zoe")
    backend.outbox.plan(zoe, {"bob": ["all"]})
    sent = view("+1 202 555 0111")
    for owner, recipient in (("alice", "bob"), ("alice", "dave"), ("zoe", "bob")):
        backend.outbox.set_intent(owner, recipient, intent(sent), sent.values(REGION))
    backend.outbox.set_intent("alice", "dave", None)          # that write was recorded
    found = backend.outbox.interrupted()
    assert sorted((d.owner, d.recipient) for d in found) == [("alice", "bob"), ("zoe", "bob")]
    assert all(d.intent == intent(sent) and d.written_values == sent.values(REGION)
               for d in found)
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=1)  # finish leaves it
    assert len(backend.outbox.interrupted()) == 2


def test_a_view_is_kept_while_a_job_delivery_offer_or_the_owner_refers_to_it(backend):
    views = {n: view("+1 202 555 01%d" % n) for n in (11, 22, 33, 44, 55)}
    jobs = {}
    for n, v in views.items():
        # "update some" each time: changes for a chosen few replace no other change
        assert backend.owners.record_view("alice", v, v, v.values(REGION))
        backend.outbox.restrict("alice", ["bob", "dave"])
        jobs[n] = [j for j in backend.outbox.pending_jobs(100) if j.owner == "alice"][-1]
    assert [j.seq for j in backend.outbox.pending_jobs(100)] == [1, 2, 3, 4, 5]
    seq = {n: job.seq for n, job in jobs.items()}
    bob_view = view("+1 202 555 0102", "Bob Baker")
    backend.owners.record_view("bob", bob_view, bob_view, bob_view.values(REGION))

    backend.outbox.plan(jobs[11], {"bob": ["user:bob"]})
    # every change is still wanted by a job, a delivery or the owner
    assert {n: backend.owners.view_at("alice", s) for n, s in seq.items()} == views
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=seq[11])
    backend.consent.put_offer(Offer("alice", "dave", seq[22]))
    backend.outbox.plan(jobs[22], {"bob": ["user:bob"], "dave": ["user:dave"]})
    backend.outbox.plan(jobs[33], {"bob": ["user:bob"], "dave": ["user:dave"]})
    backend.outbox.plan(jobs[44], {"bob": ["user:bob"], "dave": ["user:dave"]})

    kept = {n: backend.owners.view_at("alice", s) for n, s in seq.items()}
    assert kept == {11: views[11],     # bob's delivered_seq
                    22: views[22],     # dave's offer (the recipient may still accept it)
                    33: None,          # nobody needs it any more
                    44: views[44],     # the deliveries' wanted_seq
                    55: views[55]}     # a job, and the owner's current change
    assert backend.outbox.delivery("alice", "bob").delivered_view == views[11]
    assert backend.owners.view_at("bob", 1) == bob_view  # another owner's views stay

    backend.consent.drop_offer("alice", "dave")
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=seq[44])
    backend.outbox.plan(jobs[55], {})
    kept = {n: backend.owners.view_at("alice", s) for n, s in seq.items()}
    assert kept == {11: None, 22: None, 33: None, 44: views[44], 55: views[55]}
    assert backend.owners.view_at("alice", 0) is None
    assert backend.owners.view_at("alice", 99) is None


def test_pending_deliveries_wait_until_they_are_due(backend):
    planned(backend, "bob", "carol", "dave")
    now = time.time()
    finish(backend, "alice", "bob", idx.PENDING, due=now + 100, error="busy, retry later")
    finish(backend, "alice", "carol", idx.DELIVERED, delivered_seq=1)
    assert {d.recipient for d in backend.outbox.pending_deliveries(10, now)} == {"dave"}
    assert {d.recipient for d in backend.outbox.pending_deliveries(10, now + 101)} == {"bob",
                                                                                     "dave"}
    assert len(backend.outbox.pending_deliveries(1, now + 101)) == 1
    assert backend.outbox.next_due() == 0.0  # dave is due now

    finish(backend, "alice", "dave", idx.FAILED, error="no book")
    assert backend.outbox.pending_deliveries(10, now) == []
    assert not backend.outbox.has_work(now)
    assert backend.outbox.has_work(now + 101)
    assert backend.outbox.next_due() == pytest.approx(now + 100)


def test_has_work_and_next_due(backend):
    assert not backend.outbox.has_work(time.time()) and backend.outbox.next_due() is None
    job = change(backend, "+1 202 555 0111")
    assert backend.outbox.has_work(time.time())        # a job to plan
    assert backend.outbox.next_due() is None           # but no delivery waits
    backend.outbox.plan(job, {"bob": ["user:bob"]})
    assert backend.outbox.has_work(time.time()) and backend.outbox.next_due() == 0.0
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    assert not backend.outbox.has_work(time.time()) and backend.outbox.next_due() is None
    backend.outbox.withdraw("alice", None)  # not stopped: nothing to withdraw
    assert not backend.outbox.has_work(time.time())


def intent(v: View, action: str = "update", href: str = "ally.vcf") -> Intent:
    return Intent(v, "bob/contacts", href, action,
                  (Change("TEL", "TEL;TYPE=CELL:+1 202 555 0101", None),
                   Change("NOTE", None, "NOTE:a;b\\, c")), "sha256:" + href)


def test_set_intent_records_the_write_and_accumulates_written_values(backend):
    planned(backend, "bob")
    first, second = view("+1 202 555 0111"), view("+1 202 555 0122", "Alice Smith")
    backend.outbox.set_intent("alice", "bob", intent(first, "create"), first.values(REGION))
    bob = backend.outbox.delivery("alice", "bob")
    assert bob.intent == intent(first, "create") and bob.written_values == first.values(REGION)
    backend.outbox.set_intent("alice", "bob", None)
    assert backend.outbox.delivery("alice", "bob").intent is None
    backend.outbox.set_intent("alice", "bob", intent(second, "withdraw", "b.vcf"),
                              second.values(REGION))
    assert backend.outbox.delivery("alice", "bob").intent == intent(second, "withdraw", "b.vcf")
    backend.outbox.set_intent("alice", "bob", None)
    bob = backend.outbox.delivery("alice", "bob")
    assert bob.intent is None
    assert bob.written_values == {("FN", "Alice Archer"), ("FN", "Alice Smith"),
                                  ("TEL", A), ("TEL", B)}
    backend.outbox.set_intent("alice", "nobody", intent(first), first.values(REGION))
    assert backend.outbox.delivery("alice", "nobody") is None  # no delivery: nothing made


def test_finish_stores_the_outcome_and_the_view_is_that_of_the_delivered_change(backend):
    job = planned(backend, "bob")
    sent = backend.owners.view_at("alice", job.seq)
    assert sent == view("+1 202 555 0111")
    backend.outbox.set_intent("alice", "bob", intent(sent), sent.values(REGION))
    # the view a delivery holds is the view of its delivered_seq, never one handed to finish
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq,
           delivered_view=view("+1 202 555 0666", "Mallory"))
    bob = backend.outbox.delivery("alice", "bob")
    assert (bob.state, bob.delivered_seq, bob.delivered_view, bob.error) == (
        idx.DELIVERED, job.seq, sent, "")
    assert bob.written_values == sent.values(REGION)  # not lost by finish
    assert bob.intent == intent(sent)                 # cleared by set_intent only
    assert bob.updated

    finish(backend, "alice", "bob", idx.FAILED, error="the recipient removed your card",
           due=12.5, intent=None, written_values=set(), reasons=["changed"])
    bob = backend.outbox.delivery("alice", "bob")
    assert (bob.state, bob.error, bob.delivered_seq, bob.due) == (
        idx.FAILED, "the recipient removed your card", job.seq, 12.5)
    assert (bob.intent, bob.written_values, bob.reasons) == (
        intent(sent), sent.values(REGION), ["user:bob"])


def test_finish_is_ignored_when_the_delivery_was_planned_again(backend):
    planned(backend, "bob")
    in_hand = backend.outbox.delivery("alice", "bob")
    newer = change(backend, "+1 202 555 0122")
    backend.outbox.plan(newer, {"bob": ["user:bob"]})
    in_hand.state, in_hand.delivered_seq = idx.DELIVERED, in_hand.wanted_seq
    backend.outbox.finish(in_hand)
    bob = backend.outbox.delivery("alice", "bob")
    assert (bob.state, bob.wanted_seq, bob.delivered_seq, bob.delivered_view) == (
        idx.PENDING, newer.seq, 0, None)


def test_ensure_creates_a_pending_delivery_only_when_there_is_none(backend):
    made = backend.outbox.ensure("alice", "bob", 3)
    assert (made.owner, made.recipient, made.state, made.wanted_seq) == ("alice", "bob",
                                                                         idx.PENDING, 3)
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=3)
    kept = backend.outbox.ensure("alice", "bob", 5)
    assert (kept.state, kept.wanted_seq, kept.delivered_seq) == (idx.DELIVERED, 3, 3)


def test_reopen_for_makes_the_chosen_deliveries_of_a_recipient_pending(backend):
    for owner in ("alice", "dave"):
        backend.outbox.ensure(owner, "carol", 1)
        finish(backend, owner, "carol", idx.FAILED, error="not allowed", due=time.time() + 999)
    backend.outbox.ensure("erin", "carol", 1)
    finish(backend, "erin", "carol", idx.BLOCKED)
    backend.outbox.ensure("alice", "bob", 1)
    finish(backend, "alice", "bob", idx.FAILED, error="x")

    backend.outbox.reopen_for("carol", "alice", [idx.FAILED, idx.BLOCKED])
    reopened = backend.outbox.delivery("alice", "carol")
    assert (reopened.state, reopened.error, reopened.due) == (idx.PENDING, "", 0.0)
    assert backend.outbox.delivery("dave", "carol").state == idx.FAILED
    assert backend.outbox.delivery("erin", "carol").state == idx.BLOCKED

    backend.outbox.reopen_for("carol", None, [])
    assert backend.outbox.delivery("erin", "carol").state == idx.BLOCKED
    backend.outbox.reopen_for("carol", None, [idx.BLOCKED])
    assert backend.outbox.delivery("erin", "carol").state == idx.PENDING
    assert backend.outbox.delivery("dave", "carol").state == idx.FAILED
    assert backend.outbox.delivery("alice", "bob").state == idx.FAILED  # another recipient


def test_withdraw_marks_only_stopped_deliveries(backend):
    job = planned(backend, "bob", "carol", "dave", "erin")
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    for recipient in ("carol", "dave"):
        finish(backend, "alice", recipient, idx.STOPPED)
    finish(backend, "alice", "erin", idx.WITHDRAWN)
    assert backend.outbox.withdraw("alice", []) == []
    assert backend.outbox.withdraw("alice", ["bob", "carol", "erin", "zed"]) == ["carol"]
    assert states(backend) == {"bob": idx.DELIVERED, "carol": idx.WITHDRAWING,
                               "dave": idx.STOPPED, "erin": idx.WITHDRAWN}
    assert backend.outbox.withdraw("alice", None) == ["dave"]
    assert states(backend)["dave"] == idx.WITHDRAWING
    assert {d.recipient for d in backend.outbox.pending_deliveries(10, time.time())} == {
        "carol", "dave"}
    assert backend.outbox.withdraw("bob", None) == []


def delivered(ix: SharingIndex, recipient: str = "bob") -> Job:
    """Alice's change planned and delivered to ``recipient``."""
    job = planned(ix, recipient)
    finish(ix, "alice", recipient, idx.DELIVERED, delivered_seq=job.seq, delivered_at=100.0)
    return job


def test_a_rolled_back_copy_waits_for_its_repair_until_the_bound(backend):
    job = delivered(backend)
    assert backend.outbox.rolled_back("alice", "bob", job.seq, 50.0, 2) == idx.ROLLED_BACK
    found = backend.outbox.delivery("alice", "bob")
    assert (found.state, found.due, found.repairs) == (idx.ROLLED_BACK, 50.0, 1)
    # waiting like a pending delivery, when due
    assert backend.outbox.pending_deliveries(10, 49.0) == []
    assert [d.recipient for d in backend.outbox.pending_deliveries(10, 50.0)] == ["bob"]
    assert backend.outbox.has_work(50.0) and backend.outbox.next_due() == 50.0
    assert backend.outbox.counts(50.0).due == 1
    # only a delivered copy of that change can be rolled back
    assert backend.outbox.rolled_back("alice", "bob", job.seq, 60.0, 2) is None
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    assert backend.outbox.rolled_back("alice", "bob", job.seq + 1, 60.0, 2) is None
    assert backend.outbox.rolled_back("alice", "carol", job.seq, 60.0, 2) is None
    assert backend.outbox.rolled_back("alice", "bob", job.seq, 60.0, 2) == idx.ROLLED_BACK
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    # the bound reached: left behind, not waiting
    assert backend.outbox.rolled_back("alice", "bob", job.seq, 70.0, 2) == idx.BEHIND
    found = backend.outbox.delivery("alice", "bob")
    assert (found.state, found.repairs) == (idx.BEHIND, 2)
    assert backend.outbox.pending_deliveries(10, 1e12) == []


def test_repairs_are_counted_per_change(backend):
    job = delivered(backend)
    backend.outbox.rolled_back("alice", "bob", job.seq, 50.0, 1)
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    assert backend.outbox.rolled_back("alice", "bob", job.seq, 50.0, 1) == idx.BEHIND
    backend.outbox.requeue("alice")          # the same change planned again: still counted
    plan_next(backend, "bob")
    assert backend.outbox.delivery("alice", "bob").repairs == 1
    assert states(backend) == {"bob": idx.PENDING}
    planned(backend, "bob", number="+1 202 555 0122")   # a new change: counted afresh
    assert backend.outbox.delivery("alice", "bob").repairs == 0


# -- history ---------------------------------------------------------------------------

def test_history_round_trips_changes_and_lists_newest_first(backend):
    changes = (Change("TEL", "TEL;TYPE=CELL:+1 202 555 0111", "TEL;TYPE=CELL:+1 202 555 0122"),
               Change("EMAIL", None, "EMAIL:alice@example.org"),
               Change("NOTE", "NOTE:a;b\\, c", None))
    backend.history.record(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "create", ()))
    backend.history.record(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "update", changes,
                                        time="2026-02-03T04:05:06+00:00"))
    backend.history.record(HistoryEntry("dave", "bob", "bob/work", "d.vcf", "withdraw", ()))
    backend.history.record(HistoryEntry("alice", "carol", "carol/contacts", "c.vcf", "create", ()))

    bob = backend.history.of_recipient("bob")
    assert [(e.owner, e.action) for e in bob] == [("dave", "withdraw"), ("alice", "update"),
                                                  ("alice", "create")]
    assert bob[0].id > bob[1].id > bob[2].id
    assert bob[1].changes == changes
    assert (bob[1].book, bob[1].href, bob[1].time) == ("bob/contacts", "a.vcf",
                                                       "2026-02-03T04:05:06+00:00")
    assert bob[2].time  # the time of recording when none is given
    assert [e.action for e in backend.history.of_recipient("bob", limit=2)] == ["withdraw",
                                                                                "update"]
    assert backend.history.of_recipient("erin") == []


# -- transactions ----------------------------------------------------------------------

def test_a_transaction_commits_all_its_calls_together(backend):
    with backend.transaction():
        backend.links.put(link("alice", "bob", "a.vcf"))
        with backend.transaction():
            backend.consent.set_policy("bob", "alice", "auto")
        change(backend, "+1 202 555 0111")
    assert backend.links.get("alice", "bob") is not None
    assert backend.consent.policies("bob") == {"alice": "auto"}
    assert backend.outbox.queued("alice") == 1


def test_an_exception_rolls_back_everything_in_the_transaction(backend):
    backend.consent.set_policy("bob", "alice", "ask")
    with pytest.raises(RuntimeError):
        with backend.transaction():
            backend.consent.set_policy("bob", "alice", "auto")
            with backend.transaction():       # joins the outer one
                backend.links.put(link("alice", "bob", "a.vcf"))
                change(backend, "+1 202 555 0111")
            backend.keys.verify("alice", A)   # the nested part ended well...
            raise RuntimeError("...but the outer one fails")
    assert backend.consent.policies("bob") == {"alice": "ask"}
    assert backend.links.get("alice", "bob") is None
    assert backend.owners.get("alice").view is None and backend.outbox.queued("alice") == 0
    assert backend.owners.past_values("alice") == set()
    assert backend.keys.holders([A]) == {}

    # the index is usable again
    with backend.transaction():
        backend.links.put(link("alice", "bob", "a.vcf"))
    assert backend.links.get("alice", "bob") is not None


def test_an_exception_in_a_nested_transaction_rolls_back_the_outer_one(backend):
    with pytest.raises(ValueError):
        with backend.transaction():
            backend.links.put(link("alice", "bob", "a.vcf"))
            backend.history.record(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf",
                                                "create", ()))
            with backend.transaction():
                backend.links.put(link("carol", "bob", "a.vcf"))  # one owner per card
    assert backend.links.get("alice", "bob") is None
    assert backend.history.of_recipient("bob") == []


# -- group operations (one call for a whole round of the fan-out) ----------------------

def test_put_many_adds_and_replaces_cards_of_several_books(backend):
    backend.cards.put(card("bob/contacts", "x.vcf", A))
    backend.cards.put_many([card("bob/contacts", "x.vcf", B), card("carol/contacts", "y.vcf", A),
                            card("carol/work", "z.vcf", MAIL, is_group=True)])
    assert backend.cards.card("bob/contacts", "x.vcf") == card("bob/contacts", "x.vcf", B)
    assert backend.cards.cards_with_keys("bob", [A]) == []
    assert {(c.book, c.href) for c in backend.cards.cards_with_keys("carol", [A, MAIL])} == {
        ("carol/contacts", "y.vcf"), ("carol/work", "z.vcf")}
    backend.cards.put_many([])
    assert backend.cards.card("carol/work", "z.vcf") is not None


def test_drop_offers_forgets_only_the_named_pairs(backend):
    for owner, recipient in (("alice", "bob"), ("alice", "carol"), ("dave", "bob")):
        backend.consent.put_offer(Offer(owner, recipient, 1))
    backend.consent.drop_offers([("alice", "bob"), ("dave", "bob"), ("erin", "bob")])
    assert backend.consent.offers_for("bob") == []
    assert [o.recipient for o in backend.consent.offers_from("alice")] == ["carol"]
    backend.consent.drop_offers([])
    assert backend.consent.offer("alice", "carol") is not None


def test_pending_deliveries_leave_out_the_pairs_being_written(backend):
    planned(backend, "bob", "carol", "dave")
    now = time.time()
    assert [(d.recipient) for d in backend.outbox.pending_deliveries(10, now)] == [
        "bob", "carol", "dave"]
    busy = [("alice", "bob"), ("alice", "carol")]
    assert [d.recipient for d in backend.outbox.pending_deliveries(1, now, busy)] == ["dave"]
    assert backend.outbox.pending_deliveries(10, now, busy + [("alice", "dave")]) == []
    # a skipped pair is not lost, only left out of this call
    assert [d.recipient for d in backend.outbox.pending_deliveries(2, now)] == ["bob", "carol"]


def test_finish_many_stores_each_outcome_and_ignores_deliveries_planned_again(backend):
    job = planned(backend, "bob", "carol", "dave")
    bob, carol, dave = (backend.outbox.delivery("alice", r) for r in ("bob", "carol", "dave"))
    newer = change(backend, "+1 202 555 0122")
    bob.state, bob.delivered_seq, bob.delivered_at = idx.DELIVERED, job.seq, 1234.5
    carol.state, carol.error, carol.due = idx.FAILED, "the recipient removed your card", 99.0
    backend.outbox.finish_many([bob, carol])
    got_bob, got_carol = (backend.outbox.delivery("alice", r) for r in ("bob", "carol"))
    assert (got_bob.state, got_bob.delivered_seq, got_bob.delivered_at) == (
        idx.DELIVERED, job.seq, 1234.5)
    assert got_bob.delivered_view == view("+1 202 555 0111")
    assert (got_carol.state, got_carol.error, got_carol.due) == (
        idx.FAILED, "the recipient removed your card", 99.0)
    assert backend.outbox.delivery("alice", "dave").state == idx.PENDING

    # a delivery planned again while it was being written keeps its new plan
    backend.outbox.plan(newer, {"dave": ["user:dave"]})
    dave.state, dave.delivered_seq = idx.DELIVERED, job.seq
    backend.outbox.finish_many([dave])
    again = backend.outbox.delivery("alice", "dave")
    assert (again.state, again.wanted_seq, again.delivered_seq) == (idx.PENDING, newer.seq, 0)
    backend.outbox.finish_many([])


def test_clear_intents_clears_the_named_pairs_and_keeps_the_written_values(backend):
    planned(backend, "bob", "carol")
    sent = view("+1 202 555 0111")
    for recipient in ("bob", "carol"):
        backend.outbox.set_intent("alice", recipient, intent(sent), sent.values(REGION))
    backend.outbox.clear_intents([("alice", "bob"), ("alice", "nobody")])
    bob, carol = (backend.outbox.delivery("alice", r) for r in ("bob", "carol"))
    assert bob.intent is None and bob.written_values == sent.values(REGION)
    assert carol.intent == intent(sent)
    assert [d.recipient for d in backend.outbox.interrupted()] == ["carol"]


def test_record_many_appends_entries_in_order(backend):
    entries = [HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "create", ()),
               HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "update",
                            (Change("TEL", "TEL:+1 202 555 0111", "TEL:+1 202 555 0122"),)),
               HistoryEntry("dave", "carol", "carol/contacts", "d.vcf", "withdraw", ())]
    backend.history.record_many(entries)
    bob = backend.history.of_recipient("bob")
    assert [e.action for e in bob] == ["update", "create"]
    assert bob[0].changes == entries[1].changes and bob[0].time
    assert [e.owner for e in backend.history.of_recipient("carol")] == ["dave"]
    backend.history.record_many([])


# -- WebDAV-Push: topics and subscriptions ---------------------------------------------

def push_subscription(sub_id: str, book: str = "alice/contacts", user: str = "alice",
                      resource: str = "https://push.example.org/1", expires: float = 2000.0,
                      key: str = "K1", created: float = 100.0) -> idx.PushSubscription:
    return idx.PushSubscription(sub_id, user, book, resource, key, "S1", expires,
                                "aes128gcm", created)


def test_a_book_keeps_the_first_topic_it_gets(backend):
    assert backend.push.topic("alice/contacts") is None
    assert backend.push.ensure_topic("alice/contacts", "T1") == "T1"
    assert backend.push.ensure_topic("alice/contacts", "T2") == "T1"
    assert backend.push.topic("alice/contacts") == "T1"
    assert backend.push.ensure_topic("alice/other", "T3") == "T3"


def test_registering_the_same_push_resource_again_renews_the_subscription(backend):
    first = backend.push.put(push_subscription("s1"))
    assert first == push_subscription("s1")
    again = backend.push.put(push_subscription("s2", expires=5000.0, key="K2", created=300.0))
    # the id, owner and creation stay; keys and expiry are the new ones
    assert (again.id, again.user, again.created, again.public_key, again.expires) == (
        "s1", "alice", 100.0, "K2", 5000.0)
    assert backend.push.get("s1") == again and backend.push.get("s2") is None
    # the same push resource for another book is another subscription
    other = backend.push.put(push_subscription("s3", book="alice/other"))
    assert other.id == "s3"
    assert backend.push.count(1000.0, user="alice") == 2


def test_expired_subscriptions_are_left_out_counted_out_and_purged(backend):
    backend.push.put(push_subscription("old", resource="https://p/old", expires=1000.0))
    backend.push.put(push_subscription("new", resource="https://p/new", expires=3000.0))
    backend.push.put(push_subscription("bob", user="bob", book="bob/contacts",
                                       resource="https://p/bob", expires=3000.0))
    assert {s.id for s in backend.push.of_book("alice/contacts", 500.0)} == {"new", "old"}
    assert [s.id for s in backend.push.of_book("alice/contacts", 1000.0)] == ["new"]
    assert [s.id for s in backend.push.of_user("alice", 1500.0)] == ["new"]
    assert backend.push.count(1500.0) == 2
    assert backend.push.count(1500.0, book="alice/contacts") == 1
    assert backend.push.count(1500.0, user="bob", book="bob/contacts") == 1
    assert backend.push.get("old") is not None  # still there until purged
    assert backend.push.purge_expired(1500.0) == 1
    assert backend.push.get("old") is None and backend.push.get("new") is not None


def test_of_user_lists_by_book_then_age_and_remove_says_whether_there_was_one(backend):
    backend.push.put(push_subscription("b", book="alice/zz", resource="https://p/1"))
    backend.push.put(push_subscription("a2", resource="https://p/2", created=200.0))
    backend.push.put(push_subscription("a1", resource="https://p/3", created=150.0))
    assert [s.id for s in backend.push.of_user("alice", 0.0)] == ["a1", "a2", "b"]
    assert backend.push.remove("a1") is True
    assert backend.push.remove("a1") is False
    assert [s.id for s in backend.push.of_user("alice", 0.0)] == ["a2", "b"]
    assert backend.push.of_user("bob", 0.0) == []


def test_push_calls_join_an_outer_transaction(backend):
    with pytest.raises(RuntimeError):
        with backend.transaction():
            backend.push.put(push_subscription("s1"))
            backend.push.ensure_topic("alice/contacts", "T1")
            raise RuntimeError("rolled back")
    assert backend.push.get("s1") is None and backend.push.topic("alice/contacts") is None


# -- invites ----------------------------------------------------------------------------

def invite(id_: str = "i1", owner: str = "alice", created: float = 1000.0, **fields
           ) -> idx.Invite:
    return idx.Invite(id_, owner, "hash-" + id_, created, **fields)


def test_an_invite_is_found_by_id_and_token_hash_and_listed_newest_first(backend):
    backend.invites.add(invite("i1", created=1000.0, expires=2000.0, max_uses=3,
                               label="for Bob"))
    backend.invites.add(invite("i2", created=1500.0))
    backend.invites.add(invite("i3", owner="carol"))
    assert backend.invites.get("i1") == idx.Invite("i1", "alice", "hash-i1", 1000.0, 2000.0,
                                                   3, 0, None, "for Bob")
    assert backend.invites.get("i2") == idx.Invite("i2", "alice", "hash-i2", 1500.0)
    assert backend.invites.by_token_hash("hash-i3").id == "i3"
    assert backend.invites.get("nope") is None and backend.invites.by_token_hash("x") is None
    assert [i.id for i in backend.invites.of_owner("alice")] == ["i2", "i1"]
    assert backend.invites.of_owner("bob") == []


def test_an_invites_id_and_token_hash_are_unique(backend):
    backend.invites.add(invite("i1"))
    with pytest.raises(ValueError):
        backend.invites.add(invite("i1", owner="carol"))
    with pytest.raises(ValueError):
        backend.invites.add(idx.Invite("i2", "carol", "hash-i1", 1.0))
    assert [i.owner for i in backend.invites.all()] == ["alice"]


def test_use_counts_each_recipient_once_up_to_max_uses(backend):
    backend.invites.add(invite("i1", max_uses=2))
    assert backend.invites.use("i1", "bob", 1100.0)
    assert backend.invites.use("i1", "bob", 1200.0)      # again: harmless, not counted
    assert backend.invites.use("i1", "carol", 1300.0)
    assert not backend.invites.use("i1", "dave", 1400.0)  # used up
    assert backend.invites.use("i1", "bob", 1500.0)      # an earlier recipient still may
    assert backend.invites.get("i1").uses == 2
    assert backend.invites.uses("i1") == [idx.InviteUse("i1", "bob", 1100.0),
                                          idx.InviteUse("i1", "carol", 1300.0)]
    assert not backend.invites.use("nope", "bob", 1100.0)


def test_a_use_given_back_frees_its_place(backend):
    backend.invites.add(invite("i1", max_uses=1))
    assert backend.invites.use("i1", "bob", 1100.0)
    assert not backend.invites.use("i1", "carol", 1200.0)
    backend.invites.unuse("i1", "bob")                  # bob's accepting failed
    backend.invites.unuse("i1", "bob")                  # twice: nothing more given back
    assert backend.invites.get("i1").uses == 0 and backend.invites.uses("i1") == []
    assert backend.invites.use("i1", "carol", 1300.0)
    assert backend.invites.get("i1").uses == 1
    backend.invites.unuse("nope", "bob")


def test_an_invite_without_max_uses_has_no_limit(backend):
    backend.invites.add(invite("i1"))
    for n, user in enumerate(("bob", "carol", "dave", "erin")):
        assert backend.invites.use("i1", user, 1100.0 + n)
    assert backend.invites.get("i1").uses == 4


def test_a_revoked_or_expired_invite_can_be_used_by_nobody(backend):
    backend.invites.add(invite("i1", expires=2000.0))
    backend.invites.add(invite("i2"))
    assert backend.invites.use("i1", "bob", 1999.0) and backend.invites.use("i2", "bob", 1100.0)
    assert not backend.invites.use("i1", "bob", 2000.0)   # expired, even for bob
    assert not backend.invites.use("i1", "carol", 2500.0)
    assert backend.invites.revoke("i2", 1200.0)
    assert not backend.invites.revoke("i2", 1300.0)       # revoked already: the time stays
    assert backend.invites.get("i2").revoked == 1200.0
    assert not backend.invites.use("i2", "bob", 1250.0)
    assert not backend.invites.use("i2", "carol", 1250.0)
    assert [i.uses for i in (backend.invites.get("i1"), backend.invites.get("i2"))] == [1, 1]
    assert not backend.invites.revoke("nope", 1.0)


def test_an_invites_state_says_why_it_cannot_be_used():
    assert invite(expires=2000.0, max_uses=1).state(1500.0) == "active"
    assert invite(expires=2000.0).state(2000.0) == "expired"
    assert invite(max_uses=2, uses=2).state(1500.0) == "used up"
    assert invite(expires=2000.0, max_uses=1, uses=1, revoked=1200.0).state(3000.0) == "revoked"


def test_created_since_counts_the_owners_invites_revoked_ones_too(backend):
    for n, when in enumerate((100.0, 200.0, 300.0)):
        backend.invites.add(invite("i%d" % n, created=when))
    backend.invites.add(invite("c1", owner="carol", created=300.0))
    backend.invites.revoke("i2", 400.0)
    assert backend.invites.created_since("alice", 200.0) == 2
    assert backend.invites.created_since("alice", 0.0) == 3
    assert backend.invites.created_since("bob", 0.0) == 0


def test_invites_all_restore_and_forget_user(backend):
    backend.invites.add(invite("a1", max_uses=5))
    backend.invites.add(invite("c1", owner="carol", created=900.0))
    backend.invites.use("a1", "bob", 1100.0)
    backend.invites.use("c1", "alice", 1200.0)
    backend.invites.use("c1", "bob", 1300.0)
    restored = idx.Invite("d1", "dave", "hash-d1", 500.0, 9000.0, 2, 1, 800.0, "old")
    backend.invites.restore(restored, [idx.InviteUse("d1", "erin", 600.0)])
    assert backend.invites.get("d1") == restored
    assert backend.invites.uses("d1") == [idx.InviteUse("d1", "erin", 600.0)]
    with pytest.raises(ValueError):
        backend.invites.restore(restored, [])
    assert [i.id for i in backend.invites.all()] == ["a1", "c1", "d1"]
    assert [(u.invite, u.recipient) for u in backend.invites.all_uses()] == [
        ("a1", "bob"), ("c1", "alice"), ("c1", "bob"), ("d1", "erin")]

    backend.invites.forget_user("alice")
    assert [i.id for i in backend.invites.all()] == ["c1", "d1"]
    assert [(u.invite, u.recipient) for u in backend.invites.all_uses()] == [
        ("c1", "bob"), ("d1", "erin")]
    assert backend.invites.get("c1").uses == 2  # alice's use of carol's invite is not given back


def test_invite_calls_join_an_outer_transaction(backend):
    backend.invites.add(invite("i1", max_uses=1))
    with pytest.raises(RuntimeError):
        with backend.transaction():
            backend.invites.use("i1", "bob", 1100.0)
            backend.invites.add(invite("i2"))
            raise RuntimeError("rolled back")
    assert backend.invites.get("i2") is None and backend.invites.get("i1").uses == 0
    assert backend.invites.use("i1", "carol", 1200.0)


def test_an_invite_is_sharing_state(backend):
    assert backend.is_empty()
    backend.invites.add(invite("i1"))
    assert not backend.is_empty()


# -- backups and accounts: listing everything, restoring exactly, forgetting a user ------------

def test_owners_all_lists_every_owner_record_and_views_are_kept_per_change(backend):
    change(backend, "+1 202 555 0111")
    change(backend, "+1 202 555 0122")
    backend.owners.set_discoverability("dave", "nobody")  # an owner record without a me card
    assert [o.user for o in backend.owners.all()] == ["alice", "dave"]
    assert backend.owners.all()[0] == backend.owners.get("alice")
    assert backend.owners.views("alice") == {1: view("+1 202 555 0111"),
                                             2: view("+1 202 555 0122")}
    assert backend.owners.views("dave") == {}


def test_restore_stores_an_owner_exactly_and_queues_nothing(backend):
    v6, v7 = view("+1 202 555 0111"), view("+1 202 555 0122")
    owner = idx.Owner("alice", "alice/contacts", "alice.vcf", "alice-me", ["FN", "TEL"],
                      ["EMAIL"], ["all", "user:bob"], v7, v7, 7, "everyone", ["a notice"])
    backend.owners.restore(owner, {6: v6, 7: v7}, v6.values(REGION) | v7.values(REGION))
    assert backend.owners.get("alice") == owner
    assert backend.owners.views("alice") == {6: v6, 7: v7}
    assert backend.owners.view_at("alice", 6) == v6
    assert backend.owners.past_values("alice") == v6.values(REGION) | v7.values(REGION)
    assert backend.outbox.pending_jobs(10) == []
    # the next change continues from the restored seq
    v8 = view("+1 202 555 0133")
    assert backend.owners.record_view("alice", v8, v8, v8.values(REGION))
    assert backend.owners.get("alice").seq == 8


def test_forget_user_drops_the_owner_record_views_and_values(backend):
    change(backend, "+1 202 555 0111")
    change(backend, "+1 202 555 0122", user="bob")
    backend.owners.forget_user("alice")
    assert backend.owners.get("alice") == idx.Owner("alice")
    assert backend.owners.views("alice") == {} and backend.owners.past_values("alice") == set()
    assert [o.user for o in backend.owners.all()] == ["bob"]


def test_keys_all_restore_and_forget_user(backend):
    backend.keys.set_claims("alice", [A, MAIL])
    backend.keys.verify("alice", A)
    backend.keys.verify("bob", A)  # moves: alice's verification is lost
    assert [(k.user, k.key, k.state) for k in backend.keys.all()] == [
        ("alice", MAIL, "unverified"), ("alice", A, "moved"), ("bob", A, "verified")]

    backend.keys.restore(idx.Key("carol", B, True, "2026-11-01T10:00:00+00:00", None))
    assert backend.keys.of_user("carol") == [
        idx.Key("carol", B, True, "2026-11-01T10:00:00+00:00", None)]
    assert backend.keys.holders([A, B]) == {A: "bob", B: "carol"}
    with pytest.raises(ValueError):
        backend.keys.restore(idx.Key("dave", B, False, "2026-11-02T10:00:00+00:00", None))
    assert backend.keys.holders([B]) == {B: "carol"}

    backend.keys.put_code(Code("bob", A, "digest", time.time() + 600, 0))
    backend.keys.record_send("bob", A, time.time())
    backend.keys.forget_user("bob")
    assert backend.keys.of_user("bob") == [] and backend.keys.holders([A]) == {}
    assert backend.keys.code("bob", A) is None and backend.keys.sends_since(0, user="bob") == 0
    # the key is free: verifying it now moves it from nobody
    assert backend.keys.verify("dave", A) is None


def test_links_all_lists_every_link_by_owner_and_recipient(backend):
    backend.links.put(Link("bob", "alice", "alice/contacts", "b.vcf", idx.LINK_CREATED, "t1"))
    backend.links.put(Link("alice", "carol", "carol/contacts", "a.vcf", idx.LINK_ACCEPTED, "t2"))
    backend.links.put(Link("alice", "bob", "bob/contacts", "a.vcf", idx.LINK_VERIFIED, "t3"))
    assert [(k.owner, k.recipient) for k in backend.links.all()] == [
        ("alice", "bob"), ("alice", "carol"), ("bob", "alice")]
    assert backend.links.all()[0] == Link("alice", "bob", "bob/contacts", "a.vcf",
                                          idx.LINK_VERIFIED, "t3")


def test_consent_lists_restores_offers_as_given_and_forgets_a_user(backend):
    backend.consent.set_policy("bob", "alice", "auto")
    backend.consent.set_policy("bob", "*", "ask")
    backend.consent.set_policy("carol", "bob", "block")
    backend.consent.set_policy("alice", "carol", "auto")
    assert backend.consent.all_policies() == [
        ("alice", "carol", "auto"), ("bob", "*", "ask"), ("bob", "alice", "auto"),
        ("carol", "bob", "block")]
    old = Offer("alice", "bob", 3, idx.OFFER_POSTPONED, "bob/contacts", "ally.vcf",
                "2026-11-01T10:00:00+00:00", "2026-10-01T10:00:00+00:00",
                "2026-12-01T09:00:00+00:00", 2)
    backend.consent.restore_offer(old)
    assert backend.consent.offer("alice", "bob") == old
    assert backend.consent.new_offers_since("alice", "2000-01-01T00:00:00+00:00") == 0
    backend.consent.put_offer(Offer("carol", "alice", 1))
    backend.consent.put_offer(Offer("dave", "carol", 1))
    assert [(o.owner, o.recipient) for o in backend.consent.all_offers()] == [
        ("alice", "bob"), ("carol", "alice"), ("dave", "carol")]

    backend.consent.forget_user("alice")
    assert backend.consent.all_policies() == [("bob", "*", "ask"), ("carol", "bob", "block")]
    assert [(o.owner, o.recipient) for o in backend.consent.all_offers()] == [("dave", "carol")]
    assert backend.consent.new_offers_since("carol", "2000-01-01T00:00:00+00:00") == 1


def test_all_jobs_drops_nothing_and_restore_job_keeps_the_id(backend):
    for number in ("+1 202 555 0111", "+1 202 555 0122"):
        v = view(number)
        backend.owners.record_view("alice", v, v, v.values(REGION))
    assert [(j.owner, j.seq) for j in backend.outbox.all_jobs()] == [("alice", 1), ("alice", 2)]
    assert len(backend.outbox.all_jobs()) == 2  # listing drops nothing (pending_jobs would)

    for job in backend.outbox.all_jobs():
        backend.outbox.plan(job, {})
    backend.outbox.restore_job(Job(40, "bob", 5, ["carol"], False))
    backend.outbox.restore_job(Job(41, "bob", 6, None, True))
    assert backend.outbox.all_jobs() == [Job(40, "bob", 5, ["carol"], False),
                                         Job(41, "bob", 6, None, True)]
    with pytest.raises(ValueError):
        backend.outbox.restore_job(Job(41, "carol", 1))
    backend.outbox.requeue("alice")
    assert backend.outbox.all_jobs()[-1].id > 41  # new changes come after the restored ones


def test_restore_deliveries_round_trips_them_in_queue_order(backend):
    v1, v2 = view("+1 202 555 0111"), view("+1 202 555 0122")
    backend.owners.restore(idx.Owner("alice", view=v2, card_view=v2, seq=2), {1: v1, 2: v2},
                           v1.values(REGION) | v2.values(REGION))
    given = [
        idx.Delivery("alice", "erin", idx.PENDING, 2, 1, None, intent(v2), v1.values(REGION),
                     ["all"], "", "2026-11-01T10:00:00+00:00", 0.0, 1700000000.0, 2),
        idx.Delivery("alice", "bob", idx.WITHDRAWING, 2, 2, None, None, v2.values(REGION),
                     ["user:bob"], "", "2026-11-01T10:00:01+00:00", 0.0, 1700000001.0),
        idx.Delivery("alice", "carol", idx.FAILED, 2, 0, None, None, set(), ["all"],
                     "the recipient has no address book", "2026-11-01T10:00:02+00:00",
                     1800000000.0, 0.0),
    ]
    backend.outbox.restore_deliveries(given)
    backend.outbox.restore_deliveries([])
    found = backend.outbox.all_deliveries()
    assert [d.recipient for d in found] == ["erin", "bob", "carol"]  # the order given
    expected = [idx.Delivery(**{**d.__dict__, "delivered_view": {1: v1, 2: v2}.get(
        d.delivered_seq)}) for d in given]
    assert found == expected
    assert [(d.owner, d.recipient) for d in backend.outbox.pending_deliveries(10, 2e9)] == [
        ("alice", "erin"), ("alice", "bob")]
    assert backend.outbox.deliveries_to("bob") == [expected[1]]
    with pytest.raises(ValueError):
        backend.outbox.restore_deliveries([given[0]])


def test_outbox_forget_user_ends_deliveries_from_and_to_the_user(backend):
    planned(backend, "bob", "carol", "dave")
    backend.owners.restore(idx.Owner("bob", view=view("+1 202 555 0122", "Bob"), seq=1),
                           {1: view("+1 202 555 0122", "Bob")}, ())
    backend.outbox.restore_deliveries([idx.Delivery("bob", "alice", idx.DELIVERED, 1, 1)])
    finish(backend, "alice", "carol", idx.STOPPED)
    finish(backend, "alice", "dave", idx.STOPPED)
    backend.outbox.set_intent("alice", "carol", None, {("TEL", A)})
    backend.outbox.withdraw("alice", ["carol"])
    backend.outbox.requeue("alice")

    backend.outbox.forget_user("alice", keep_withdrawing=True)
    assert [(d.owner, d.recipient, d.state) for d in backend.outbox.all_deliveries()] == [
        ("alice", "carol", idx.WITHDRAWING)]
    assert backend.outbox.delivery("alice", "carol").written_values == {("TEL", A)}
    assert backend.outbox.all_jobs() == []

    backend.outbox.forget_user("alice")
    assert backend.outbox.all_deliveries() == []
    assert backend.outbox.deliveries_to("carol") == []


def test_counts_tell_how_much_work_waits(backend):
    empty = backend.outbox.counts(time.time())
    assert (empty.jobs, empty.states, empty.due, empty.oldest_job) == (0, {}, 0, None)
    planned(backend, "bob", "carol", "dave")
    finish(backend, "alice", "carol", idx.FAILED, error="no book")
    finish(backend, "alice", "dave", idx.PENDING, due=time.time() + 3600)
    backend.outbox.requeue("alice")
    counts = backend.outbox.counts(time.time())
    assert counts.jobs == 1 and counts.oldest_job
    assert counts.states == {idx.PENDING: 2, idx.FAILED: 1}
    assert counts.due == 1  # dave waits an hour


def test_history_all_pages_restore_many_keeps_ids_and_forget_recipient(backend):
    restored = [HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "create",
                             (Change("TEL", None, "TEL:+1 202 555 0111"),),
                             "2026-11-01T10:00:00+00:00", 7),
                HistoryEntry("alice", "carol", "carol/contacts", "c.vcf", "update", (),
                             "2026-11-01T10:00:01+00:00", 9)]
    backend.history.restore_many(restored)
    assert backend.history.all() == restored
    assert backend.history.all(after=7) == restored[1:]
    assert backend.history.all(limit=1) == restored[:1]
    with pytest.raises(ValueError):
        backend.history.restore_many(restored[:1])
    backend.history.record(HistoryEntry("dave", "bob", "bob/contacts", "d.vcf", "update", ()))
    newest = backend.history.of_recipient("bob")[0]
    assert newest.owner == "dave" and newest.id > 9
    assert backend.history.forget_recipient("bob") == 2
    assert backend.history.all() == restored[1:]


def test_push_topics_all_and_forget_user(backend):
    backend.push.ensure_topic("alice/contacts", "T1")
    backend.push.ensure_topic("alice/work", "T2")
    backend.push.ensure_topic("alicia/contacts", "T3")
    backend.push.put(push_subscription("s1"))
    backend.push.put(push_subscription("s2", book="alicia/contacts", user="alicia",
                                       expires=10.0))
    assert backend.push.topics() == {"alice/contacts": "T1", "alice/work": "T2",
                                     "alicia/contacts": "T3"}
    assert [s.id for s in backend.push.all()] == ["s1", "s2"]  # expired ones too
    backend.push.forget_user("alice")
    assert backend.push.topics() == {"alicia/contacts": "T3"}
    assert [s.id for s in backend.push.all()] == ["s2"]


def test_is_empty_until_sharing_state_is_stored(backend):
    assert backend.is_empty()
    backend.cards.put(card("bob/contacts", "a.vcf", A))  # the card-key index does not count
    backend.cards.set_built()
    assert backend.is_empty()
    backend.consent.set_policy("bob", "alice", "auto")
    assert not backend.is_empty()


def test_a_snapshot_sees_one_moment_and_joins_an_outer_transaction(backend):
    backend.consent.set_policy("bob", "alice", "auto")
    with backend.snapshot():
        assert backend.consent.all_policies() == [("bob", "alice", "auto")]
        assert not backend.is_empty()
    with backend.transaction():
        backend.consent.set_policy("carol", "alice", "block")
        with backend.snapshot():  # inside a transaction: its own writes are seen
            assert len(backend.consent.all_policies()) == 2
    assert len(backend.consent.all_policies()) == 2


def _in_thread(work: Callable[[], object], timeout: float = 5.0) -> object:
    """``work``'s result in another thread; fails if it is not back within ``timeout``."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked: waited for another thread's write transaction"
    return result[0]


def test_a_read_is_not_blocked_by_another_threads_open_write_transaction(backend):
    """The fan-out's write transaction never holds up a request's read (nor a storage
    hook's under Radicale's lock): the read sees the last commit, at once."""
    backend.consent.set_policy("bob", "alice", "auto")
    with backend.transaction():
        backend.consent.set_policy("bob", "alice", "block")   # not committed yet
        backend.links.put(link("alice", "bob", "a.vcf"))
        begin = time.monotonic()
        seen = _in_thread(lambda: (backend.consent.policies("bob"),
                                   backend.links.get("alice", "bob")))
        assert time.monotonic() - begin < 1.0
        assert seen == ({"alice": "auto"}, None)               # the last commit
        assert backend.consent.policies("bob") == {"alice": "block"}  # its own writes
    # committed: every thread sees it
    assert _in_thread(lambda: backend.consent.policies("bob")) == {"alice": "block"}
    assert backend.links.get("alice", "bob") is not None


def test_a_snapshot_is_not_blocked_by_another_threads_open_write_transaction(backend):
    backend.consent.set_policy("bob", "alice", "auto")

    def report() -> tuple:
        with backend.snapshot():
            return backend.consent.policies("bob"), backend.is_empty()
    with backend.transaction():
        backend.consent.set_policy("bob", "alice", "ask")
        assert _in_thread(report) == ({"alice": "auto"}, False)
    assert _in_thread(report) == ({"alice": "ask"}, False)


def test_writes_of_two_threads_to_one_record_still_wait_for_each_other(backend):
    """Positive control: a second writer of what the open transaction wrote waits for it,
    then commits (SQLite has one writer; PostgreSQL locks the row)."""
    done = threading.Event()

    def write() -> None:
        backend.consent.set_policy("bob", "alice", "block")
        done.set()
    with backend.transaction():
        backend.consent.set_policy("bob", "alice", "auto")
        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        assert not done.wait(0.3)          # it waits for this transaction
        assert backend.consent.policies("bob") == {"alice": "auto"}
    assert done.wait(5.0)
    thread.join(5.0)
    assert backend.consent.policies("bob") == {"alice": "block"}  # written after


def test_a_copy_written_while_planned_again_is_recorded_and_its_next_write_waits(backend):
    """A burst: the owner's next change is planned while the round writes her last one."""
    job = planned(backend, "bob", "carol")
    bob, carol = (backend.outbox.delivery("alice", r) for r in ("bob", "carol"))
    newer = change(backend, "+1 202 555 0122")
    backend.outbox.plan(newer, {"bob": ["user:bob"], "carol": ["user:carol"]}, 10.0)
    written_at = time.time()
    bob.state, bob.delivered_seq, bob.delivered_at = idx.DELIVERED, job.seq, written_at
    carol.state, carol.delivered_seq = idx.DELIVERED, job.seq  # held it already: no write
    backend.outbox.finish_many([bob, carol], spacing=10.0)

    got = backend.outbox.delivery("alice", "bob")
    assert (got.state, got.wanted_seq, got.delivered_seq) == (idx.PENDING, newer.seq, job.seq)
    assert got.delivered_at == pytest.approx(written_at)
    assert got.due == pytest.approx(written_at + 10.0)   # the newer change waits its turn
    assert [d.recipient for d in backend.outbox.pending_deliveries(10, time.time())] == [
        "carol"]
    assert [d.recipient for d in backend.outbox.pending_deliveries(
        10, written_at + 10.5)] == ["carol", "bob"]
    untouched = backend.outbox.delivery("alice", "carol")
    assert (untouched.delivered_seq, untouched.delivered_at, untouched.due) == (0, 0.0, 0.0)

    # an older write reported late never moves a newer record back
    bob.delivered_at = written_at - 100
    backend.outbox.finish_many([bob], spacing=10.0)
    assert backend.outbox.delivery("alice", "bob").delivered_at == pytest.approx(written_at)


# -- a user's region (schema 5) -----------------------------------------------------------
def test_a_users_region_is_set_cleared_and_restored(backend):
    assert backend.owners.get("bob").region is None  # none set: the card, then the default
    backend.owners.set_region("bob", "DE")
    assert backend.owners.get("bob").region == "DE"
    assert backend.owners.get("alice").region is None
    restored = backend.owners.get("bob")
    backend.owners.set_region("bob", None)
    assert backend.owners.get("bob").region is None
    backend.owners.restore(restored, {}, ())
    assert backend.owners.get("bob").region == "DE"


def test_books_marked_stale_stay_so_until_read_whole_again(backend):
    for book in ("bob/contacts", "bob/work", "bobby/contacts"):
        backend.cards.set_book_mtime(book, 5)
    assert backend.cards.mark_stale("bob") == ["bob/contacts", "bob/work"]
    assert backend.cards.stale_books("bob") == ["bob/contacts", "bob/work"]
    assert backend.cards.stale_books("bobby") == []
    # a single card written meanwhile does not end the mark: the others are still old
    backend.cards.set_book_mtime("bob/work", 9)
    assert backend.cards.stale_books("bob") == ["bob/contacts", "bob/work"]
    assert backend.cards.book_mtimes()["bob/work"] != 9  # read again at the next start too
    backend.cards.replace_book("bob/work", [], 9)
    assert backend.cards.stale_books("bob") == ["bob/contacts"]
    assert backend.cards.book_mtimes()["bob/work"] == 9
    assert backend.cards.book_mtimes()["bobby/contacts"] == 5
    assert backend.cards.mark_stale("carol") == []


# -- batched reads (a fan-out round gathers with these) --------------------------------
# Each answers for many at once exactly what its one-at-a-time method answers for each;
# 1,200 of them cross any backend's chunking of long lists.

def test_owners_get_many_is_get_for_each_user(backend):
    backend.owners.set_me_card("alice", "alice/contacts", "me.vcf", "uid-a")
    backend.owners.set_region("alice", "DE")
    backend.owners.set_rules("bob", ["all"])
    change(backend, "+1 202 555 0111")
    users = ["alice", "bob", "nobody"] + ["u%04d" % i for i in range(1200)]
    found = backend.owners.get_many(users + ["alice"])
    assert sorted(found) == sorted(users)
    assert all(found[u] == backend.owners.get(u) for u in users)
    assert found["alice"].region == "DE" and found["alice"].view is not None
    assert found["nobody"].view is None and backend.owners.get_many([]) == {}


def test_books_of_many_is_books_of_for_each_user(backend):
    users = ["al", "alice", "a_", "bob"] + ["u%04d" % i for i in range(1200)]
    for book in ("al/contacts", "alice/contacts", "alice/work", "alice2/contacts",
                 "ab/contacts", "Bob/contacts", "u0007/contacts", "u1100/x"):
        backend.cards.set_book_mtime(book, 1)
    found = backend.cards.books_of_many(users)
    assert sorted(found) == sorted(users)
    assert all(found[u] == backend.cards.books_of(u) for u in users)
    assert found["alice"] == ["alice/contacts", "alice/work"] and found["a_"] == []
    assert found["bob"] == [] and found["u1100"] == ["u1100/x"]


def test_cards_with_keys_of_is_cards_with_keys_for_each_user(backend):
    many = ["tel:+1202555%04d" % i for i in range(1200)]
    for book in ("bob/contacts", "bob/work", "al/contacts", "bobby/contacts"):
        backend.cards.put(card(book, "a.vcf", A, C))
    backend.cards.put(card("bob/contacts", "b.vcf", B, MAIL))
    backend.cards.put(card("bob/contacts", "g.vcf", B, is_group=True))
    backend.cards.put(card("carol/contacts", "late.vcf", many[-1], A))
    users = ["bob", "al", "carol", "erin"] + ["u%04d" % i for i in range(1200)]
    for keys in ([A, MAIL], [B], [], [C], many + [MAIL]):
        found = backend.cards.cards_with_keys_of(users, keys)
        assert sorted(found) == sorted(users)
        # the users with cards, and two without: asked one by one (the 1,200 of them make
        # 8,000 reads, seconds on PostgreSQL); the others have none either way
        assert all(found[u] == backend.cards.cards_with_keys(u, keys) for u in users[:6]), keys
        assert all(found[u] == [] for u in users[4:])
    # every key of a card comes with it, not only those asked about
    assert backend.cards.cards_with_keys_of(["bob"], [MAIL])["bob"] == [
        card("bob/contacts", "b.vcf", B, MAIL)]


def test_links_get_many_and_at_many_are_get_and_at_for_each(backend):
    made = [link("alice", "bob", "ally.vcf"), link("carol", "bob", "c.vcf"),
            link("alice", "dave", "a.vcf", book="dave/work")]
    made += [link("o%04d" % i, "r%04d" % i, "x.vcf") for i in range(1200)]
    for one in made:
        backend.links.put(one)
    pairs = [(m.owner, m.recipient) for m in made] + [("bob", "alice"), ("alice", "erin")]
    assert backend.links.get_many(pairs) == {(m.owner, m.recipient): m for m in made}
    assert backend.links.get_many([("alice", "bob")]) == {("alice", "bob"): made[0]}
    cards = [(m.book, m.href) for m in made] + [("bob/contacts", "other.vcf")]
    assert backend.links.at_many(cards) == {(m.book, m.href): m for m in made}
    assert backend.links.get_many([]) == {} and backend.links.at_many([]) == {}


def test_policies_of_is_policies_for_each_recipient(backend):
    backend.consent.set_policy("bob", "alice", "auto")
    backend.consent.set_policy("bob", "*", "ask")
    backend.consent.set_policy("carol", "alice", "block")
    backend.consent.set_policy("r1100", "o", "auto")
    recipients = ["bob", "carol", "dave"] + ["r%04d" % i for i in range(1200)]
    found = backend.consent.policies_of(recipients)
    assert sorted(found) == sorted(recipients)
    assert all(found[r] == backend.consent.policies(r) for r in recipients)
    assert found["bob"] == {"alice": "auto", "*": "ask"} and found["dave"] == {}


# -- history: undo and retention (issue 15) ------------------------------------------------

def test_undo_marks_are_kept_once_and_undone_values_listed_by_pair_and_forgotten(backend):
    from radicale_plugin.index import UndoMark, UndoneValue
    h = backend.history
    first = h.add(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "update",
                               (Change("TEL", "TEL:1", "TEL:2"),)))
    undo = h.add(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "undo",
                              (Change("TEL", "TEL:2", "TEL:1"),)))
    assert undo > first and h.get(first).changes == (Change("TEL", "TEL:1", "TEL:2"),)
    assert h.get(undo).action == "undo" and h.get(999) is None
    assert h.mark_undone(UndoMark(first, "2026-01-01T00:00:00+00:00", undo, '{"a": 1}'))
    assert not h.mark_undone(UndoMark(first, "2027-01-01T00:00:00+00:00", 0, "{}"))
    assert h.undo_marks([first, undo, 999]) == {
        first: UndoMark(first, "2026-01-01T00:00:00+00:00", undo, '{"a": 1}')}
    h.add_undone([UndoneValue("alice", "bob", "TEL", "tel:+2", "TEL:1", first),
                  UndoneValue("alice", "bob", "EMAIL", "", "EMAIL:a@x", first),
                  UndoneValue("alice", "carol", "TEL", "tel:+2", "", 5),
                  UndoneValue("dave", "bob", "FN", "Dave", "FN:D", 6)])
    found = h.undone_of([("alice", "bob"), ("alice", "carol"), ("alice", "erin")])
    assert sorted(found) == [("alice", "bob"), ("alice", "carol")]
    assert [(v.field, v.value_key, v.kept, v.entry) for v in found[("alice", "bob")]] == [
        ("TEL", "tel:+2", "TEL:1", first), ("EMAIL", "", "EMAIL:a@x", first)]
    h.forget_undone([found[("alice", "bob")][0].id])
    assert [v.field for v in h.undone_of([("alice", "bob")])[("alice", "bob")]] == ["EMAIL"]
    assert [e.owner for e in h.of_recipient("bob", owner="alice")] == ["alice", "alice"]
    assert h.of_recipient("bob", owner="dave") == []
    assert h.forget_recipient("bob") == 2
    assert h.undone_of([("alice", "bob"), ("dave", "bob")]) == {}
    assert h.undo_marks([first]) == {} and list(h.undone_of([("alice", "carol")]))


def test_history_purge_forgets_old_entries_and_their_marks_and_keeps_undone_values(backend):
    from radicale_plugin.index import UndoMark, UndoneValue
    h = backend.history
    old = h.add(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "update", (),
                             "2020-01-01T00:00:00+00:00"))
    new = h.add(HistoryEntry("alice", "bob", "bob/contacts", "a.vcf", "update", (),
                             "2026-06-01T00:00:00+00:00"))
    h.mark_undone(UndoMark(old, "2020-01-02T00:00:00+00:00"))
    h.mark_undone(UndoMark(new, "2026-06-02T00:00:00+00:00"))
    h.add_undone([UndoneValue("alice", "bob", "TEL", "tel:+2", "TEL:1", old)])
    assert h.purge("2026-01-01T00:00:00+00:00") == 1
    assert [e.id for e in h.of_recipient("bob")] == [new]
    assert list(h.undo_marks([old, new])) == [new]
    assert h.undone_of([("alice", "bob")])[("alice", "bob")][0].entry == old
    assert h.purge("2026-01-01T00:00:00+00:00") == 0


# -- notifications (notify part) -----------------------------------------------------

def _notify_event(recipient: str = "bob", owner: str = "alice", at: float = 100.0
                  ) -> idx.NotifyEvent:
    return idx.NotifyEvent(recipient, owner, "offer", 1, at, at, "https://x.example")


def _notify_batch(recipient: str = "bob", created: float = 200.0) -> idx.NotifyBatch:
    return idx.NotifyBatch(0, recipient, "mailto:bob@example.org", "ready", created, created,
                           "Subject: x\r\n\r\nhi\r\n", "<m@x>")


def test_notify_choice_is_stored_and_none_cancels_what_waits(backend):
    assert backend.notify.setting("bob") == idx.NotifySetting("bob")
    backend.notify.set_base("bob", "https://x.example")
    backend.notify.set_choice("bob", "offers", "mailto:bob@example.org")
    assert backend.notify.setting("bob") == idx.NotifySetting(
        "bob", "offers", "mailto:bob@example.org", "https://x.example")
    backend.notify.add_event(_notify_event())
    made = backend.notify.make_batch(_notify_batch(), [], [])
    backend.notify.add_event(_notify_event(at=300.0))
    backend.notify.set_choice("bob", "none", "mailto:bob@example.org")
    assert backend.notify.waiting() == []
    assert backend.notify.batch(made).state == "cancelled"


def test_notify_events_go_into_one_batch_once(backend):
    for at in (100.0, 110.0):
        backend.notify.add_event(_notify_event(at=at))
    backend.notify.add_event(_notify_event("carol", at=105.0))
    waiting = backend.notify.waiting()
    assert [(e.recipient, e.time) for e in waiting] == [("bob", 100.0), ("bob", 110.0),
                                                        ("carol", 105.0)]
    bob = [e.id for e in waiting if e.recipient == "bob"]
    carol = [e.id for e in waiting if e.recipient == "carol"]
    made = backend.notify.make_batch(_notify_batch(), bob[:1], bob[1:])
    assert made and [e.id for e in backend.notify.events_of(made)] == bob[:1]
    assert [e.id for e in backend.notify.waiting()] == carol  # the dropped one is gone
    # the same events again (another process made a batch of them first): nothing is made
    assert backend.notify.make_batch(_notify_batch(), bob[:1], []) == 0
    assert backend.notify.last_batch("bob") == 200.0 and backend.notify.last_batch("x") is None


def test_a_notify_batch_is_claimed_once_and_one_found_sending_is_not_sent_again(backend):
    made = backend.notify.make_batch(_notify_batch(), [], [])
    assert [b.id for b in backend.notify.due_batches(300.0)] == [made]
    assert backend.notify.due_batches(100.0) == [] and backend.notify.next_due() == 200.0
    assert backend.notify.claim(made) and not backend.notify.claim(made)
    assert backend.notify.batch(made).attempts == 1 and backend.notify.due_batches(300.0) == []
    backend.notify.finish(made, "ready", 400.0, "the mail server cannot be reached")
    assert backend.notify.batch(made).error and backend.notify.next_due() == 400.0
    assert backend.notify.claim(made)
    assert [b.id for b in backend.notify.interrupted()] == [made]
    assert backend.notify.batch(made).state == "unknown" and not backend.notify.claim(made)
    assert backend.notify.interrupted() == []


def test_notify_secret_is_made_once_and_purge_keeps_the_newest_batch(backend):
    secret = backend.notify.secret()
    assert len(secret) == 32 and backend.notify.secret() == secret
    old = backend.notify.make_batch(_notify_batch(created=10.0), [], [])
    backend.notify.finish(old, "sent", sent=11.0)
    newest = backend.notify.make_batch(_notify_batch(created=20.0), [], [])
    backend.notify.finish(newest, "sent", sent=21.0)
    assert backend.notify.purge(1000.0) == 1
    assert [b.id for b in backend.notify.batches("bob")] == [newest]
    backend.notify.add_event(_notify_event())
    backend.notify.forget_user("bob")
    assert backend.notify.batches("bob") == [] and backend.notify.waiting() == []
    assert backend.notify.setting("bob") == idx.NotifySetting("bob")


# -- audiences: a field set per target rule (owner/audiences.py) -------------------------

def test_audiences_are_kept_per_owner_and_survive_a_restore(backend):
    sets = {"group:Family": {"fields": ["FN", "N", "ADR"], "withdrawn": []},
            "all": {"fields": None, "withdrawn": ["BDAY"]}}
    assert backend.owners.get("alice").audiences == {}
    backend.owners.set_audiences("alice", sets)
    assert backend.owners.get("alice").audiences == sets
    assert backend.owners.get("bob").audiences == {}
    assert backend.owners.get_many(["alice"])["alice"].audiences == sets
    backend.owners.set_audiences("alice", {})
    assert backend.owners.get("alice").audiences == {}
    owner = backend.owners.get("carol")
    owner.audiences = sets
    backend.owners.restore(owner, {}, ())
    assert backend.owners.get("carol").audiences == sets


def test_a_forced_record_view_is_a_new_change_with_the_same_view(backend):
    first = view("+1 202 555 0111")
    assert backend.owners.record_view("alice", first, first, first.values(REGION))
    seq = backend.owners.get("alice").seq
    assert not backend.owners.record_view("alice", first, first, ())
    assert backend.owners.record_view("alice", first, first, (), force=True)
    assert backend.owners.get("alice").seq == seq + 1
    assert backend.owners.view_at("alice", seq + 1) == first
    assert [j.seq for j in backend.outbox.pending_jobs(10)] == [seq + 1]
    # no me card: nothing to send, forced or not
    assert backend.owners.record_view("alice", None, None, ())
    assert not backend.owners.record_view("alice", None, None, (), force=True)


# -- SQLite: the log is checkpointed beside the writer (index/sqlite/database.py) ------------

def test_sqlite_commits_never_checkpoint_and_the_log_still_reaches_the_database_file(tmp_path):
    """A commit never checkpoints (a storage hook's commit, under Radicale's exclusive lock,
    must not copy the log and wait for the disk, nor wait for the fan-out's commit doing
    it): the checkpointer thread does it, on its own connection, a moment after writes."""
    path = tmp_path / "x.sqlite"
    ix = SQLiteIndex(str(path))
    try:
        assert ix.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        with ix.transaction():
            for i in range(2000):
                ix.consent.set_policy("u%04d" % i, "alice", "auto")

        def whole() -> bool:  # the database file alone holds every page
            pages, size = (ix.db.conn.execute("PRAGMA %s" % p).fetchone()[0]
                           for p in ("page_count", "page_size"))
            return path.stat().st_size >= pages * size
        deadline = time.monotonic() + 10
        while not whole() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert whole()
        assert ix.consent.policies("u1999") == {"alice": "auto"}  # read beside it
    finally:
        ix.close()
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0


# -- backups of undo and notifications (admin/backup) ---------------------------------------

def test_undone_values_are_listed_by_id_in_pages_for_a_backup(backend):
    from radicale_plugin.index import UndoneValue
    h = backend.history
    h.add_undone([UndoneValue("alice", "bob", "TEL", "k%d" % i, "", i) for i in range(5)])
    h.forget_undone([h.all_undone()[1].id])
    every = h.all_undone()
    assert [v.value_key for v in every] == ["k0", "k2", "k3", "k4"]
    assert [v.id for v in every] == sorted(v.id for v in every)
    assert h.all_undone(after=every[1].id, limit=1) == every[2:3]


def test_notifications_are_read_whole_and_restored_with_their_ids_and_key(backend, fresh):
    from radicale_plugin.index.records import (BATCH_SENT, EVENT_OFFER, NOTIFY_NONE,
                                               NotifyBatch, NotifyEvent, NotifySetting)
    n = backend.notify
    assert n.known_secret() is None  # reading makes no key
    assert n.known_secret() is None and n.all_settings() == [] and n.all_events() == []
    n.set_choice("bob", NOTIFY_NONE, None)
    n.set_base("carol", "https://dav.example.org")
    assert n.all_settings() == [NotifySetting("bob", NOTIFY_NONE),
                                NotifySetting("carol", None, None, "https://dav.example.org")]
    key = n.secret()
    assert n.known_secret() == key

    o = fresh().notify  # another server's empty database, of the same backend
    o.set_base("bob", "https://learnt.example.org")  # a URL learnt, none in the backup
    o.set_base("carol", "https://learnt.example.org")  # the backup's URL wins
    batch = NotifyBatch(7, "bob", "mailto:b@example.org", BATCH_SENT, 1.0, 1.0, "text",
                        "<m@x>", 1, 2.0)
    events = [NotifyEvent("bob", "alice", EVENT_OFFER, 3, 1.0, 1.0, None, 4, 7),
              NotifyEvent("bob", "alice", EVENT_OFFER, 4, 5.0, 5.0, "https://b", 9)]
    o.restore(n.all_settings(), [batch], events, key)
    assert o.all_settings() == [
        NotifySetting("bob", NOTIFY_NONE, None, "https://learnt.example.org"),
        NotifySetting("carol", None, None, "https://dav.example.org")]
    assert o.known_secret() == key
    assert o.batches() == [batch] and o.all_events() == events
    assert o.events_of(7) == events[:1] and o.waiting() == events[1:]
    o.add_event(NotifyEvent("bob", "alice", EVENT_OFFER, 5, 6.0, 6.0))
    assert o.all_events()[-1].id == 10  # ids go on after the restored ones
    with pytest.raises(ValueError, match="given twice"):
        o.restore([], [batch], [], None)
    assert o.known_secret() == key  # None keeps the key there is



# -- two processes on one database: what SQLite's single writer gave for free -------------
# ``reopen`` gives another index object on the same database: another process.  Each test
# starts a write on the second while the first's transaction is open, then commits the
# first: the outcome must be the one of the two run one after the other.

def _raced(backend: SharingIndex, first: Callable[[SharingIndex], object],
           second: Callable[[SharingIndex], object]) -> tuple[object, object]:
    """``first`` in an open transaction of ``backend``; meanwhile ``second`` on another
    process's index, started before that commit.  Both results."""
    other = reopen(backend)
    try:
        result: list = []

        def run() -> None:
            try:
                result.append(second(other))
            except BaseException as e:  # noqa: B902  (re-raised in the test's thread)
                result.append(e)
        with backend.transaction():
            mine = first(backend)
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(0.3)  # as far as it goes before the commit
        thread.join(10)
        assert not thread.is_alive(), "the second process never finished"
        if isinstance(result[0], BaseException):
            raise result[0]
        return mine, result[0]
    finally:
        other.close()


def test_two_processes_recording_views_at_once_make_two_changes(backend):
    one, two = view("+1 202 555 0111"), view("+1 202 555 0122")
    assert _raced(backend, lambda ix: ix.owners.record_view("alice", one, one, ()),
                  lambda ix: ix.owners.record_view("alice", two, two, ())) == (True, True)
    assert backend.owners.get("alice").seq == 2
    assert [j.seq for j in backend.outbox.pending_jobs(10)] == [2]  # the newest replaces
    assert backend.owners.view_at("alice", 2) == two


def test_two_processes_taking_an_invites_last_use_at_once_give_it_once(backend):
    backend.invites.add(idx.Invite("i1", "alice", "hash-i1", 1000.0, max_uses=1))
    assert _raced(backend, lambda ix: ix.invites.use("i1", "bob", 1500.0),
                  lambda ix: ix.invites.use("i1", "carol", 1500.0)) == (True, False)
    assert [u.recipient for u in backend.invites.uses("i1")] == ["bob"]
    assert backend.invites.get("i1").uses == 1


def test_two_processes_verifying_one_key_at_once_move_it_to_the_last(backend):
    """The second verification takes the key from the first holder, as one after the
    other would: never an error from the one-holder rule."""
    assert _raced(backend, lambda ix: ix.keys.verify("bob", A),
                  lambda ix: ix.keys.verify("carol", A)) == (None, "bob")
    assert backend.keys.holders([A]) == {A: "carol"}
    assert backend.keys.verified("bob") == set()


def test_an_offer_made_by_two_processes_at_once_is_counted_once(backend):
    job = change(backend, "+1 202 555 0111")
    since = "2000-01-01T00:00:00+00:00"
    _raced(backend, lambda ix: ix.consent.put_offer(Offer("alice", "bob", job.seq)),
           lambda ix: ix.consent.put_offer(Offer("alice", "bob", job.seq)))
    assert backend.consent.new_offers_since("alice", since) == 1
    backend.consent.put_offer(Offer("alice", "carol", job.seq))  # positive control
    assert backend.consent.new_offers_since("alice", since) == 2


def test_notices_added_by_two_processes_at_once_are_both_kept(backend):
    _raced(backend, lambda ix: ix.owners.add_notice("alice", "one"),
           lambda ix: ix.owners.add_notice("alice", "two"))
    assert backend.owners.get("alice").notices == ["one", "two"]


def test_a_card_linked_by_two_processes_at_once_keeps_the_first_and_refuses_the_second(
        backend):
    with pytest.raises(ValueError, match="already holds alice's copy"):
        _raced(backend, lambda ix: ix.links.put(link("alice", "bob", "x.vcf")),
               lambda ix: ix.links.put(link("carol", "bob", "x.vcf")))
    assert backend.links.at("bob/contacts", "x.vcf").owner == "alice"
    assert backend.links.get("carol", "bob") is None


def test_a_withdrawal_meanwhile_leaves_a_delivery_planned_again_alone(backend):
    """A delivery planned again (pending) while another process withdraws the stopped
    ones is not withdrawn: its copy is wanted."""
    job = planned(backend, "bob", "carol")
    finish(backend, "alice", "bob", idx.DELIVERED, delivered_seq=job.seq)
    finish(backend, "alice", "carol", idx.DELIVERED, delivered_seq=job.seq)
    backend.outbox.plan(change(backend, "+1 202 555 0122"), {})  # both stopped
    assert states(backend) == {"bob": idx.STOPPED, "carol": idx.STOPPED}
    again = change(backend, "+1 202 555 0133")
    _, withdrawn = _raced(backend, lambda ix: ix.outbox.plan(again, {"bob": ["user:bob"]}),
                          lambda ix: ix.outbox.withdraw("alice", None))
    assert withdrawn == ["carol"]
    assert states(backend) == {"bob": idx.PENDING, "carol": idx.WITHDRAWING}


# -- PostgreSQL: its schema and migrations (index/postgres/schema.py) ------------------------

def _tables_sqlite(path: Path) -> dict[str, set[str]]:
    ix = SQLiteIndex(str(path))
    try:
        names = [r[0] for r in ix.db.rows("SELECT name FROM sqlite_master WHERE type = 'table' "
                                          "AND name NOT LIKE 'sqlite_%'")]
        return {t: {r[1] for r in ix.db.rows('PRAGMA table_info("%s")' % t)} for t in names}
    finally:
        ix.close()


def _tables_postgres(ix: PostgresIndex) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table, column in ix.db.rows(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name <> 'schema_version'"):
        found.setdefault(table, set()).add(column)
    return found


def test_postgres_schema_has_every_table_and_column_of_sqlites(postgres, tmp_path):
    """A column added to SQLite's schema alone fails here: PostgreSQL needs a migration."""
    ix = PostgresIndex(postgres.new_database())
    try:
        assert _tables_postgres(ix) == _tables_sqlite(tmp_path / "x.sqlite")
    finally:
        ix.close()
    # and the same tables are sharing state (is_empty, an import's check)
    assert PostgresIndex._STATE_TABLES == SQLiteIndex._STATE_TABLES


def test_postgres_processes_starting_at_once_migrate_the_database_once(postgres):
    from radicale_plugin.index.postgres import schema
    dsn = postgres.new_database()
    start = threading.Barrier(4)
    made: list = []

    def open_index() -> None:
        start.wait()
        try:
            made.append(PostgresIndex(dsn))
        except Exception as e:  # noqa: B902  (checked below)
            made.append(e)
    threads = [threading.Thread(target=open_index) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert [type(m) for m in made] == [PostgresIndex] * 4
        assert schema.version_of(made[0].db) == schema.VERSION
        made[0].consent.set_policy("bob", "alice", "auto")
        assert made[3].consent.policies("bob") == {"alice": "auto"}
    finally:
        for m in made:
            if isinstance(m, PostgresIndex):
                m.close()


def test_postgres_migrates_an_older_database_and_refuses_a_newer_one(postgres):
    from radicale_plugin.index.postgres import database, schema
    dsn = postgres.new_database()
    db = database.Database(dsn)
    try:
        schema.migrate(db, 1)  # as the first release on PostgreSQL left it
        db.execute("INSERT INTO policies (recipient, owner, policy) VALUES ('bob', 'alice', "
                   "'auto')")
        ix = PostgresIndex(dsn)
        try:
            assert schema.version_of(db) == schema.VERSION
            assert ix.consent.policies("bob") == {"alice": "auto"}  # kept
        finally:
            ix.close()
        db.execute("UPDATE schema_version SET version = ?", (schema.VERSION + 1,))
    finally:
        db.close()
    with pytest.raises(schema.SchemaError) as refused:
        PostgresIndex(dsn + " password=s3cret")
    message = str(refused.value)
    assert "has schema version %d, but this radicale-mecard knows version %d at most" % (
        schema.VERSION + 1, schema.VERSION) in message
    assert "\n" not in message and "s3cret" not in message
    # tables without a version (made by hand): refused too, never migrated over
    db = database.Database(dsn)
    try:
        db.execute("DROP TABLE schema_version")
        with pytest.raises(schema.SchemaError, match="holds sharing tables but no schema "
                           "version"):
            schema.migrate(db)
    finally:
        db.close()


# -- several processes on one index: leases on duties, shared limits, claimed deliveries ---
# (``reopen`` gives a second index object on the same database: another process)

T = 1_000_000_000.0  # a fixed wall clock: leases and buckets are given their time


def test_a_duty_is_held_by_one_holder_until_its_lease_lapses(backend):
    leases = backend.leases
    assert leases.holder("digest", T) is None
    assert leases.take("digest", "host:1:a", 30, T)
    assert not leases.take("digest", "host:2:b", 30, T + 29)  # the lease runs
    assert leases.holder("digest", T + 29) == "host:1:a"
    assert leases.take("digest", "host:1:a", 30, T + 29)  # its holder renews it
    assert not leases.take("digest", "host:2:b", 30, T + 58)
    assert leases.holder("digest", T + 59) is None  # lapsed: the holder died
    assert leases.take("digest", "host:2:b", 30, T + 59)  # taken over
    assert not leases.take("digest", "host:1:a", 30, T + 60)
    assert leases.holder("digest", T + 60) == "host:2:b"


def test_duties_are_leased_apart_and_released_only_by_their_holder(backend):
    leases = backend.leases
    assert leases.take("digest", "host:1:a", 30, T)
    assert leases.take("history-expiry", "host:2:b", 30, T)  # another duty: free
    leases.release("digest", "host:2:b")  # not its lease: nothing changes
    assert leases.holder("digest", T) == "host:1:a"
    leases.release("digest", "host:1:a")
    assert leases.holder("digest", T) is None
    assert leases.take("digest", "host:2:b", 30, T)  # free at once, no lapse waited for
    assert leases.holder("history-expiry", T) == "host:2:b"


def test_two_processes_asking_for_duties_at_once_get_each_duty_once(fresh):
    first = fresh()
    second = reopen(first)
    try:
        won: dict[str, list[str]] = {}
        lock = threading.Lock()

        def ask(ix: SharingIndex, name: str) -> None:
            for n in range(25):
                if ix.leases.take("duty-%d" % n, name, 30, T):
                    with lock:
                        won.setdefault("duty-%d" % n, []).append(name)
        threads = [threading.Thread(target=ask, args=(ix, "host:%d:x" % i))
                   for i, ix in enumerate((first, second, first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == sorted("duty-%d" % n for n in range(25))
        assert all(len(holders) == 1 for holders in won.values()), won
        assert all(first.leases.holder(d, T) == h[0] for d, h in won.items())
    finally:
        second.close()


def test_a_bucket_grants_its_capacity_then_says_how_long_to_wait(backend):
    limits = backend.limits
    rate = 36 / 3600  # one unit every 100 s
    assert [limits.take("resolve", "alice", 1, 3, rate, T) for _ in range(3)] == [0.0] * 3
    assert limits.take("resolve", "alice", 1, 3, rate, T) == pytest.approx(100)
    assert limits.take("resolve", "alice", 1, 3, rate, T + 50) == pytest.approx(50)
    assert limits.take("resolve", "alice", 1, 3, rate, T + 100) == 0.0  # refilled one
    assert limits.take("resolve", "alice", 5, 3, rate, T + 10 ** 6) > 0  # never beyond 3


def test_buckets_are_kept_apart_per_limit_and_per_user(backend):
    limits = backend.limits
    assert limits.take("resolve", "alice", 2, 2, 0.001, T) == 0.0
    assert limits.take("resolve", "alice", 1, 2, 0.001, T) > 0
    assert limits.take("resolve", "bob", 2, 2, 0.001, T) == 0.0
    assert limits.take("invite-opens", "alice", 2, 2, 0.001, T) == 0.0


def test_a_clock_behind_the_buckets_refills_nothing(backend):
    limits = backend.limits
    assert limits.take("resolve", "alice", 2, 2, 1.0, T) == 0.0
    # another host's clock, 30 s behind: no refill, and the bucket's time stays
    assert limits.take("resolve", "alice", 1, 2, 1.0, T - 30) == pytest.approx(1)
    assert limits.take("resolve", "alice", 1, 2, 1.0, T + 1) == 0.0


def test_two_processes_share_one_bucket_and_never_get_more_than_its_capacity(fresh):
    first = fresh()
    second = reopen(first)
    try:
        assert first.limits.take("resolve", "alice", 15, 20, 0.0, T) == 0.0
        assert second.limits.take("resolve", "alice", 6, 20, 0.0, T) > 0  # 5 left, for both
        granted = []
        lock = threading.Lock()

        def ask(ix: SharingIndex) -> None:
            for _ in range(10):
                if ix.limits.take("resolve", "alice", 1, 20, 0.0, T) == 0.0:
                    with lock:
                        granted.append(1)
        threads = [threading.Thread(target=ask, args=(ix,))
                   for ix in (first, second, first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(granted) == 5
    finally:
        second.close()


def claimed(found: list) -> list[tuple[str, str]]:
    return [(d.owner, d.recipient) for d in found]


def test_a_claim_takes_due_deliveries_in_queue_order_and_another_claim_the_rest(backend):
    planned(backend, "bob", "carol", "dave", "erin")
    now = time.time()
    first = backend.outbox.claim("host:1:a", 3, now, 60)
    assert claimed(first) == [("alice", "bob"), ("alice", "carol"), ("alice", "dave")]
    assert all(d.state == idx.PENDING for d in first)
    assert claimed(backend.outbox.claim("host:2:b", 10, now, 60)) == [("alice", "erin")]
    assert backend.outbox.claim("host:3:c", 10, now, 60) == []
    # what the worker sees meanwhile: no work of its own, and the first claim's end
    assert not backend.outbox.has_work(now)
    assert backend.outbox.next_due() == pytest.approx(now + 60)
    # the plain queue is unchanged (monitoring, tests)
    assert len(queue(backend, now=now)) == 4


def test_two_processes_claiming_at_once_never_claim_one_delivery_twice(fresh):
    first = fresh()
    recipients = ["r%03d" % n for n in range(120)]
    planned(first, *recipients)
    second = reopen(first)
    try:
        got: dict[str, list[tuple[str, str]]] = {}

        def work(ix: SharingIndex, name: str) -> None:
            mine = got.setdefault(name, [])
            while True:
                found = ix.outbox.claim(name, 7, time.time(), 60)
                if not found:
                    return
                mine += claimed(found)
        threads = [threading.Thread(target=work, args=(ix, "host:%d:x" % i))
                   for i, ix in enumerate((first, second, first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [pair for pairs in got.values() for pair in pairs]
        assert sorted(every) == [("alice", r) for r in recipients]  # each exactly once
    finally:
        second.close()


def test_the_claims_of_a_process_that_died_come_back_to_another_after_the_lease(fresh):
    first = fresh()
    planned(first, "bob", "carol")
    second = reopen(first)
    try:
        now = time.time()
        assert len(first.outbox.claim("host:1:dead", 10, now, 30)) == 2
        assert second.outbox.claim("host:2:b", 10, now + 29, 30) == []
        assert second.outbox.has_work(now + 29) is False
        later = second.outbox.claim("host:2:b", 10, now + 31, 30)
        assert claimed(later) == [("alice", "bob"), ("alice", "carol")]
    finally:
        second.close()


def test_a_holder_renews_its_own_claims_only(backend):
    planned(backend, "bob", "carol")
    now = time.time()
    backend.outbox.claim("host:1:a", 1, now, 30)  # bob
    backend.outbox.claim("host:2:b", 1, now, 30)  # carol
    pairs = [("alice", "bob"), ("alice", "carol")]
    assert backend.outbox.renew("host:1:a", pairs, now + 300) == 1
    assert claimed(backend.outbox.claim("host:3:c", 10, now + 31, 300)) == [
        ("alice", "carol")]  # lapsed: taken over
    assert backend.outbox.claim("host:4:d", 10, now + 299, 30) == []  # bob's renewed lease
    assert claimed(backend.outbox.claim("host:4:d", 10, now + 301, 30)) == [("alice", "bob")]


def test_finishing_or_releasing_a_delivery_ends_its_claim(backend):
    planned(backend, "bob", "carol", "dave")
    now = time.time()
    bob, carol, dave = backend.outbox.claim("host:1:a", 10, now, 60)
    bob.state, bob.due, bob.attempts = idx.PENDING, 0.0, 1  # a retry, due at once
    backend.outbox.finish(bob)
    carol.state, carol.delivered_seq = idx.DELIVERED, carol.wanted_seq
    backend.outbox.finish_many([carol])
    backend.outbox.release("host:2:b", [("alice", "dave")])  # not its claim: stays
    assert claimed(backend.outbox.claim("host:2:b", 10, now, 60)) == [("alice", "bob")]
    backend.outbox.release("host:1:a", [("alice", "dave")])
    assert claimed(backend.outbox.claim("host:2:b", 10, now, 60)) == [("alice", "dave")]
    assert states(backend) == {"bob": idx.PENDING, "carol": idx.DELIVERED,
                               "dave": idx.PENDING}


def test_a_write_another_process_is_making_is_not_taken_for_interrupted(fresh):
    first = fresh()
    planned(first, "bob", "carol")
    second = reopen(first)
    try:
        now = time.time()
        assert len(first.outbox.claim("host:1:a", 10, now, 30)) == 2
        intent = Intent(view("+1 202 555 0111"), "bob/contacts", "x.vcf", "update", (), "h")
        first.outbox.set_intent("alice", "bob", intent)
        assert [d.recipient for d in second.outbox.interrupted()] == ["bob"]
        assert second.outbox.interrupted(now + 10) == []  # being written by its holder
        assert [d.recipient for d in second.outbox.interrupted(now + 31)] == ["bob"]
        # the one who claims it after the lapse finds the intent to settle
        found = second.outbox.claim("host:2:b", 10, now + 31, 30)
        assert [(d.recipient, d.intent is not None) for d in found] == [
            ("bob", True), ("carol", False)]
    finally:
        second.close()


def test_claimants_name_the_holders_of_live_claims_and_each_can_be_given_back_whole(backend):
    planned(backend, "bob", "carol", "dave")
    now = time.time()
    backend.outbox.claim("host:1:a", 2, now, 30)
    backend.outbox.claim("host:2:b", 1, now, 60)
    assert backend.outbox.claimants(now) == {"host:1:a", "host:2:b"}
    assert backend.outbox.claimants(now + 31) == {"host:2:b"}  # lapsed
    backend.outbox.release("host:1:a")  # every claim of a process known to be gone
    assert backend.outbox.claimants(now) == {"host:2:b"}
    assert claimed(backend.outbox.claim("host:3:c", 10, now, 30)) == [
        ("alice", "bob"), ("alice", "carol")]



def test_two_processes_queueing_deliveries_at_once_give_each_its_own_place(backend):
    """Places at the end of the queue are taken in one step: the second process's come
    after the first's, never the same ones."""
    planned(backend, "bob", "carol")
    _raced(backend, lambda ix: ix.outbox.reopen_for("bob", None, [idx.PENDING]),
           lambda ix: ix.outbox.reopen_for("carol", None, [idx.PENDING]))
    assert [d.recipient for d in backend.outbox.pending_deliveries(10, time.time())] == [
        "bob", "carol"]
    # positive control: one process, one after the other
    backend.outbox.reopen_for("carol", None, [idx.PENDING])
    backend.outbox.reopen_for("bob", None, [idx.PENDING])
    assert [d.recipient for d in backend.outbox.pending_deliveries(10, time.time())] == [
        "carol", "bob"]


def test_work_announced_by_one_process_wakes_the_listeners_of_another(fresh):
    first = fresh()
    second = reopen(first)
    woken = threading.Event()
    try:
        second.wakeups().listen("outbox", woken.set)
        if isinstance(first, SQLiteIndex):
            # one process per SQLite index in practice: its own worker is woken by itself
            first.wakeups().announce("outbox")
            return
        assert woken.wait(5)  # listening: it wakes once at the start, for what it missed
        woken.clear()
        first.wakeups().announce("elsewhere")
        assert not woken.wait(0.5)  # another topic
        with first.transaction():
            first.wakeups().announce("outbox")
            assert not woken.wait(0.5)  # told at the commit, when the work can be seen
        assert woken.wait(5)
    finally:
        second.wakeups().close()
        second.close()


def pushes(found: list) -> list[str]:
    return [m.subscription for m in found]


def test_push_messages_are_held_by_their_process_and_adopted_once_it_is_gone(fresh):
    first = fresh()
    second = reopen(first)
    try:
        now = time.time()
        first.leases.take("push-sender:host:1:a", "host:1:a", 30, now)  # alive
        second.leases.take("push-sender:host:2:b", "host:2:b", 30, now)
        with first.transaction():
            first.push.queue_put([idx.PushQueued("s1", "bob/contacts", now, 1),
                                  idx.PushQueued("s2", "bob/contacts", now + 5, 2)])
            first.push.queue_hold("host:1:a", ["s1", "s2"])
        assert first.push.queue_holders() == {"host:1:a"}
        assert second.push.adopt("host:2:b", [], now) == []  # its process lives
        # it stops renewing: gone when its lease lapses, or at once when known dead
        assert pushes(second.push.adopt("host:2:b", ["host:1:a"], now)) == ["s1", "s2"]
        assert second.push.queue_holders() == {"host:2:b"}
        assert first.push.adopt("host:1:a", [], now + 10) == []  # adopted once only
        adopted = first.push.adopt("host:1:a", [], now + 31)  # host:2:b's lease lapsed
        assert [(m.subscription, m.attempt) for m in adopted] == [("s1", 1), ("s2", 2)]
        # a message nobody holds (queued before version 7) is anybody's
        first.push.queue_put([idx.PushQueued("s3", "carol/contacts", now, 1)])
        assert pushes(second.push.adopt("host:2:b", [], now)) == ["s3"]
        assert pushes(first.push.queued()) == ["s1", "s3", "s2"]  # every one, by due time
    finally:
        second.close()


def test_lapsed_leases_of_processes_long_gone_are_forgotten(backend):
    backend.leases.take("push-sender:host:1:a", "host:1:a", 10, T)
    backend.leases.take("digest", "host:2:b", 100, T)
    assert backend.leases.purge(T + 50) == 1
    assert backend.leases.take("push-sender:host:1:a", "host:3:c", 10, T)  # free again
    assert backend.leases.holder("digest", T) == "host:2:b"


def test_two_processes_adopting_at_once_never_adopt_one_message_twice(fresh):
    first = fresh()
    second = reopen(first)
    try:
        now = time.time()
        first.push.queue_put([idx.PushQueued("s%03d" % n, "bob/contacts", now, 1)
                              for n in range(60)])  # nobody's
        got: dict[str, list[str]] = {}

        def adopt(ix: SharingIndex, name: str) -> None:
            ix.leases.take("push-sender:" + name, name, 30, now)  # alive first, as a sender
            got[name] = pushes(ix.push.adopt(name, [], now))
        threads = [threading.Thread(target=adopt, args=(ix, "host:%d:x" % i))
                   for i, ix in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [s for found in got.values() for s in found]
        assert sorted(every) == ["s%03d" % n for n in range(60)]  # each once
    finally:
        second.close()


def test_deliveries_planned_by_two_processes_at_once_keep_one_queue_order(backend):
    """Places in the queue are taken in one step: the second plan's come after the first's,
    never beside them."""
    backend.outbox.plan(change(backend, "+1 202 555 0111", "carol"), {"r0": ["all"]})
    alice, dave = change(backend, "+1 202 555 0122"), change(backend, "+1 202 555 0133", "dave")
    _raced(backend, lambda ix: ix.outbox.plan(alice, {r: ["all"] for r in ("r1", "r2")}),
           lambda ix: ix.outbox.plan(dave, {r: ["all"] for r in ("r3", "r4")}))
    assert [d.recipient for d in backend.outbox.all_deliveries()] == [
        "r0", "r1", "r2", "r3", "r4"]


def test_a_hold_on_a_count_makes_another_process_wait_until_the_transaction_ends(fresh):
    first = fresh()
    second = reopen(first)
    try:
        with first.transaction():  # held once before: the count's row exists
            first.limits.hold("code-sends", MAIL)
        held, order = threading.Event(), []

        def counting() -> None:
            with first.transaction():
                first.limits.hold("code-sends", MAIL)
                held.set()
                time.sleep(0.5)
                order.append("first done")
        thread = threading.Thread(target=counting)
        thread.start()
        assert held.wait(5)
        with second.transaction():
            second.limits.hold("code-sends", MAIL)
            order.append("second holds")
        thread.join()
        assert order == ["first done", "second holds"]
        with second.transaction():  # another key: nothing to wait for
            second.limits.hold("code-sends", "mailto:bob@example.org")
    finally:
        second.close()


def test_two_cards_moved_onto_one_href_at_once_leave_the_last_ones_link(backend):
    backend.links.put(link("alice", "bob", "a.vcf"))
    backend.links.put(link("carol", "bob", "c.vcf"))
    _raced(backend, lambda ix: ix.links.move("bob/contacts", "a.vcf", "bob/work", "x.vcf"),
           lambda ix: ix.links.move("bob/contacts", "c.vcf", "bob/work", "x.vcf"))
    assert backend.links.at("bob/work", "x.vcf").owner == "carol"  # it replaced alice's
    assert backend.links.get("alice", "bob") is None
    assert backend.links.under("bob/contacts") == []


def test_a_deleted_users_buckets_go_with_them(backend):
    limits = backend.limits
    assert limits.take("resolve", "alice", 2, 2, 0.0, T) == 0.0
    assert limits.take("resolve", "bob", 2, 2, 0.0, T) == 0.0
    limits.forget_user("alice")
    assert limits.take("resolve", "alice", 2, 2, 0.0, T) == 0.0  # full again
    assert limits.take("resolve", "bob", 1, 2, 0.0, T) > 0  # others' stay


def test_postgres_orders_text_by_bytes_in_a_database_made_with_another_locale(postgres):
    """An operator's database may sort as their language does ("a" < "B"); the index keeps
    SQLite's byte order ("B" < "a"), which its ranges and lists rely on."""
    import psycopg
    name = "icu_%d" % time.monotonic_ns()
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu "
                     "ICU_LOCALE 'en-US' LOCALE 'C'" % name)
    ix = PostgresIndex(postgres.dsn(name))
    try:
        assert ix.db.value("SELECT 'a' < 'B'")  # the database's own order
        for book, href in (("bob/contacts", "a.vcf"), ("bob/contacts", "B.vcf"),
                           ("bob/Work", "c.vcf"), ("bob0/contacts", "d.vcf")):
            ix.cards.put(card(book, href, A))
        assert [(c.book, c.href) for c in ix.cards.cards_of("bob")] == [
            ("bob/Work", "c.vcf"), ("bob/contacts", "B.vcf"), ("bob/contacts", "a.vcf")]
        for user in ("bob", "Bob", "alice"):
            ix.owners.set_rules(user, ["all"])
        assert [o.user for o in ix.owners.all()] == ["Bob", "alice", "bob"]
    finally:
        ix.close()


def test_postgres_index_on_the_storages_database_shares_its_transactions(postgres):
    """Given PostgreSQL storage's database, the index writes in the same transactions (a
    copy and its delivery record commit together) and leaves the database open."""
    from radicale_plugin.index.postgres import database
    db = database.Database(postgres.new_database())
    try:
        ix = PostgresIndex(db)
        db.execute("CREATE TABLE items (href TEXT PRIMARY KEY)")  # the storage's stand-in
        with pytest.raises(RuntimeError):
            with db.transaction():
                db.execute("INSERT INTO items (href) VALUES ('x.vcf')")
                ix.consent.set_policy("bob", "alice", "auto")
                raise RuntimeError("the copy could not be written")
        assert db.value("SELECT COUNT(*) FROM items") == 0 and ix.is_empty()  # neither
        with db.transaction():
            db.execute("INSERT INTO items (href) VALUES ('x.vcf')")
            ix.consent.set_policy("bob", "alice", "auto")
        ix.close()
        assert db.value("SELECT COUNT(*) FROM items") == 1  # still open, both committed
        assert db.value("SELECT policy FROM policies") == "auto"
    finally:
        db.close()


def test_a_fan_out_parts_records_written_at_once_are_as_if_written_one_by_one(backend):
    """The records of a fan-out's part go a few statements for many rows (PostgreSQL: a
    round trip is a statement): cards, books' times, history, offers dropped, deliveries
    finished.  With more rows than one statement takes, each row is as written alone."""
    many = ["r%03d" % i for i in range(60)]  # more than one statement's rows (50)
    job = planned(backend, *many)
    backend.cards.put_many(card("%s/contacts" % r, "copy.vcf", "tel:+1202555%04d" % i)
                           for i, r in enumerate(many))
    found = backend.cards.card("r059/contacts", "copy.vcf")
    assert found is not None and found.keys == frozenset({"tel:+12025550059"})
    assert len(backend.cards.cards_with_keys_of(set(many), {"tel:+12025550000"})["r000"]) == 1
    backend.cards.set_book_mtime("r001/contacts", 1)
    backend.cards.mark_stale("r001")  # a book to be read again stays so
    backend.cards.set_book_mtimes(("%s/contacts" % r, 9) for r in many)
    assert backend.cards.book_mtimes()["r002/contacts"] == 9
    assert backend.cards.stale_books("r001") == ["r001/contacts"]
    backend.history.record_many(HistoryEntry("alice", r, "%s/contacts" % r, "copy.vcf",
                                             "update", ()) for r in many)
    ids = [backend.history.of_recipient(r)[0].id for r in many]
    assert ids == sorted(ids) and len(set(ids)) == 60  # in the order given
    for r in many:
        backend.consent.put_offer(Offer("alice", r, job.seq))
    backend.consent.drop_offers(("alice", r) for r in many[:55])
    assert sorted(o.recipient for o in backend.consent.offers_from("alice")) == many[55:]
    in_hand = [backend.outbox.delivery("alice", r) for r in many]
    # the last one planned again meanwhile: its newer plan stays, its copy's time is kept
    # (a change for r059 alone: one for everyone would stop the others, and a stop stays)
    change(backend, "+1 202 555 0199")
    backend.outbox.restrict("alice", ["r059"])
    backend.outbox.plan(backend.outbox.pending_jobs(10)[-1], {"r059": ["all"]})
    for i, delivery in enumerate(in_hand):
        assert delivery is not None
        delivery.state, delivery.delivered_seq = idx.DELIVERED, job.seq
        delivery.delivered_at = 100.0 + i
    backend.outbox.finish_many(in_hand, 5.0)  # type: ignore[arg-type]
    assert {d.recipient: (d.state, d.delivered_seq, d.delivered_at)
            for d in backend.outbox.deliveries("alice")} == {
        r: (idx.PENDING if r == "r059" else idx.DELIVERED, job.seq, 100.0 + i)
        for i, r in enumerate(many)}
    assert backend.outbox.delivery("alice", "r059").due == 164.0  # type: ignore[union-attr]


# -- jobs claimed with leases: one change planned by one process ---------------------------
def test_a_job_claim_leaves_a_job_another_process_is_planning_and_one_it_planned(fresh):
    first = fresh()
    job = change(first, "+1 202 555 0111")
    second = reopen(first)
    try:
        now = time.time()
        assert first.outbox.claim_jobs("host:1:a", 10, now, 30) == [job]
        assert first.outbox.claim_jobs("host:1:a", 10, now, 30) == [job]  # its own again
        assert second.outbox.claim_jobs("host:2:b", 10, now, 30) == []  # being planned
        assert second.outbox.has_work(now) is False  # another's work, as a claimed delivery
        assert second.outbox.claimants(now) == {"host:1:a"}
        first.outbox.plan(job, {"bob": ["user:bob"]})  # planning ends the claim
        assert second.outbox.claim_jobs("host:2:b", 10, now, 30) == []  # nothing to plan
        assert second.outbox.claimants(now) == set()
        # positive control: the next change is claimed by whoever asks first
        later = change(first, "+1 202 555 0112")
        assert second.outbox.claim_jobs("host:2:b", 10, now, 30) == [later]
        assert first.outbox.claim_jobs("host:1:a", 10, now, 30) == []
    finally:
        second.close()


def test_the_job_of_a_process_that_died_planning_comes_back_after_the_lease(fresh):
    first = fresh()
    job = change(first, "+1 202 555 0111")
    second = reopen(first)
    try:
        now = time.time()
        assert first.outbox.claim_jobs("host:1:dead", 10, now, 30) == [job]
        assert second.outbox.claim_jobs("host:2:b", 10, now + 29, 30) == []
        assert second.outbox.has_work(now + 31) is True
        assert second.outbox.claim_jobs("host:2:b", 10, now + 31, 30) == [job]
        # or at once, when its process is known to be gone
        assert second.outbox.claim_jobs("host:3:c", 10, now + 32, 30) == []
        second.outbox.release("host:2:b")
        assert second.outbox.claim_jobs("host:3:c", 10, now + 32, 30) == [job]
    finally:
        second.close()


def test_two_processes_claiming_jobs_at_once_never_plan_one_twice(fresh):
    first = fresh()
    owners = ["o%02d" % n for n in range(12)]
    for owner in owners:
        v = view("+1 202 555 0111", owner)
        assert first.owners.record_view(owner, v, v, v.values(REGION))
    second = reopen(first)
    try:
        got: list[str] = []
        lock = threading.Lock()

        def work(ix: SharingIndex, name: str) -> None:
            while True:
                found = ix.outbox.claim_jobs(name, 3, time.time(), 60)
                if not found and not ix.outbox.has_work(time.time()):
                    return
                for job in found:
                    ix.outbox.plan(job, {})
                    with lock:
                        got.append(job.owner)
        threads = [threading.Thread(target=work, args=(ix, "host:%d:x" % i))
                   for i, ix in enumerate((first, second, first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(got) == owners  # each planned exactly once
    finally:
        second.close()


# -- a round's finish and the decisions made while it wrote (issue 16) -----------------------

def _target_removed(ix: SharingIndex, job: Job) -> None:
    ix.outbox.requeue("alice")  # the owner's rules no longer reach dave
    ix.outbox.plan(ix.outbox.pending_jobs(10)[-1], {"bob": ["user:bob"]})


def _target_withdrawn(ix: SharingIndex, job: Job) -> None:
    ix.outbox.requeue("alice", withdraw=True)
    ix.outbox.plan(ix.outbox.pending_jobs(10)[-1], {"bob": ["user:bob"]})


def _me_card_gone(ix: SharingIndex, job: Job) -> None:
    ix.owners.record_view("alice", None, None, ())


def _planned_again_for_the_same_change(ix: SharingIndex, job: Job) -> None:
    ix.outbox.requeue("alice")  # e.g. another rule now reaches dave: decided again
    ix.outbox.restrict("alice", ["dave"])
    ix.outbox.plan(ix.outbox.pending_jobs(10)[-1], {"dave": ["group:friends"]})


def _a_newer_change(ix: SharingIndex, job: Job) -> None:
    v = view("+1 202 555 0199")
    assert ix.owners.record_view("alice", v, v, v.values(REGION))
    ix.outbox.restrict("alice", ["dave"])
    ix.outbox.plan(ix.outbox.pending_jobs(10)[-1], {"dave": ["user:dave"]})


def _blocked(ix: SharingIndex, job: Job) -> None:
    # what Policies.set does: the recipient's deliveries from that owner decided again
    ix.consent.set_policy("dave", "alice", "block")
    ix.outbox.reopen_for("dave", "alice", (idx.BLOCKED, idx.FAILED, idx.OFFERED,
                                           idx.DELIVERED))


#: What is decided about dave while the round writes, and what becomes of bob (in the same
#: round): planned again with the others (decided again: pending), stopped, or untouched.
MEANWHILE = [pytest.param(f, bob, id=f.__name__.strip("_")) for f, bob in (
    (_target_removed, idx.PENDING), (_target_withdrawn, idx.PENDING),
    (_me_card_gone, idx.STOPPED), (_planned_again_for_the_same_change, idx.DELIVERED),
    (_a_newer_change, idx.DELIVERED), (_blocked, idx.DELIVERED))]


def _claimed_round(ix: SharingIndex) -> tuple[Job, dict[str, idx.Delivery]]:
    """Alice's change planned for bob and dave, and zoe's for erin; all claimed by one
    round (what the worker holds while it writes the copies)."""
    job = planned(ix, "bob", "dave")
    zoe = change(ix, "+1 202 555 0102", user="zoe")
    ix.outbox.plan(zoe, {"erin": ["user:erin"]})
    got = ix.outbox.claim("host:1:round", 10, time.time(), 60)
    assert sorted(d.recipient for d in got) == ["bob", "dave", "erin"]
    return job, {d.recipient: d for d in got}


@pytest.mark.parametrize("meanwhile, bob", MEANWHILE)
def test_a_rounds_finish_never_overwrites_a_decision_made_while_it_wrote(backend, meanwhile,
                                                                          bob):
    """Plan, claim, a decision (a stop, a withdrawal, a new plan, a block), then the
    round's finish: the decision stays, and the write the round made is recorded."""
    job, round_ = _claimed_round(backend)
    meanwhile(backend, job)
    decided = backend.outbox.delivery("alice", "dave")
    assert decided is not None
    written_at = time.time()
    for d in round_.values():
        d.state, d.delivered_seq, d.delivered_at = idx.DELIVERED, d.wanted_seq, written_at
    backend.outbox.finish_many(round_.values(), spacing=0.0)

    dave = backend.outbox.delivery("alice", "dave")
    assert (dave.state, dave.wanted_seq) == (decided.state, decided.wanted_seq)
    assert dave.state != idx.DELIVERED
    assert (dave.delivered_seq, dave.delivered_at) == (job.seq, pytest.approx(written_at))
    # positive control: a delivery of the round nobody touched is finished as it was
    erin = backend.outbox.delivery("zoe", "erin")
    assert (erin.state, erin.delivered_seq) == (idx.DELIVERED, erin.wanted_seq)
    got = backend.outbox.delivery("alice", "bob")
    assert (got.state, got.delivered_seq) == (bob, job.seq)
    assert backend.outbox.claimants(time.time()) == set()  # the round's claims end anyway


@pytest.mark.parametrize("meanwhile, bob", MEANWHILE)
def test_a_decision_without_a_write_never_overwrites_one_made_meanwhile(backend, meanwhile,
                                                                        bob):
    """The same with :meth:`finish` (an offer, a block decided by the round)."""
    job, round_ = _claimed_round(backend)
    meanwhile(backend, job)
    decided = backend.outbox.delivery("alice", "dave")
    assert decided is not None
    round_["dave"].state = idx.OFFERED
    backend.outbox.finish(round_["dave"])
    dave = backend.outbox.delivery("alice", "dave")
    assert (dave.state, dave.wanted_seq, dave.delivered_seq) == (
        decided.state, decided.wanted_seq, 0)
    round_["erin"].state = idx.OFFERED  # positive control
    backend.outbox.finish(round_["erin"])
    assert backend.outbox.delivery("zoe", "erin").state == idx.OFFERED


def test_a_delivery_planned_again_while_waiting_but_not_claimed_keeps_its_place(backend):
    """Only a claimed delivery takes a new place when planned again (what lets its finish
    tell); one that waits keeps its turn in the queue."""
    planned(backend, "bob", "dave")
    zoe = change(backend, "+1 202 555 0102", user="zoe")
    backend.outbox.plan(zoe, {"erin": ["user:erin"]})
    backend.outbox.requeue("alice")
    backend.outbox.plan(backend.outbox.pending_jobs(10)[-1],
                        {"bob": ["user:bob"], "dave": ["user:dave"]})
    assert queue(backend) == [("alice", "bob"), ("alice", "dave"), ("zoe", "erin")]


# -- a fan-out's part at once (issue 16): the same outcome as one call a delivery ---------
class Statements:
    """Counts the statements a store sends to the real database (``execute``, reads, and,
    where a statement is a round trip (PostgreSQL), each row of ``executemany``) while it
    is installed: batching pinned, not guessed."""

    def __init__(self, ix: SharingIndex, monkeypatch) -> None:
        self.count = 0
        for name in ("execute", "rows", "row", "value"):
            real = getattr(ix.db, name)

            def counted(*args, _real=real, **kwargs):
                self.count += 1
                return _real(*args, **kwargs)
            monkeypatch.setattr(ix.db, name, counted)
        each = ix.db.executemany

        def executemany(sql, rows):
            rows = list(rows)
            self.count += len(rows) if ix.db.dialect.rows_at_once else 1
            return each(sql, rows)
        monkeypatch.setattr(ix.db, "executemany", executemany)


def many(n: int) -> list[str]:
    return ["r%03d" % i for i in range(n)]


def test_a_claim_of_many_deliveries_and_their_finish_take_a_few_statements(backend,
                                                                          monkeypatch):
    recipients = many(120)  # more than one statement's batch
    planned(backend, *recipients)
    now = time.time()
    counter = Statements(backend, monkeypatch)
    got = backend.outbox.claim("host:1:a", 120, now, 60)
    assert sorted(d.recipient for d in got) == recipients
    assert counter.count <= 12  # not one a delivery
    assert backend.outbox.claim("host:2:b", 200, now, 60) == []  # every one leased
    for d in got[:100]:
        d.state, d.due, d.attempts = idx.PENDING, 0.0, 1  # retries, due at once
    counter.count = 0
    backend.outbox.finish_many(got[:100])
    assert counter.count <= 8
    # their claims ended: back in the queue; the other 20 still leased
    again = backend.outbox.claim("host:2:b", 200, now, 60)
    assert sorted(d.recipient for d in again) == recipients[:100]
    assert {d.attempts for d in again} == {1}


def test_releasing_many_claims_ends_only_the_holders_own(backend, monkeypatch):
    planned(backend, *many(90))
    now = time.time()
    mine = backend.outbox.claim("host:1:a", 60, now, 60)
    theirs = backend.outbox.claim("host:2:b", 30, now, 60)
    counter = Statements(backend, monkeypatch)
    backend.outbox.release("host:1:a", claimed(mine + theirs))  # theirs: not its claims
    assert counter.count <= 4
    assert sorted(claimed(backend.outbox.claim("host:3:c", 200, now, 60))) == sorted(
        claimed(mine))


def test_offers_of_many_pairs_are_read_at_once_and_those_without_left_out(backend,
                                                                          monkeypatch):
    for recipient in many(70):
        backend.consent.put_offer(Offer("alice", recipient, 1))
    backend.consent.put_offer(Offer("dave", "r001", 2))
    counter = Statements(backend, monkeypatch)
    wanted = [("alice", r) for r in many(80)] + [("dave", "r001"), ("dave", "r002")]
    found = backend.consent.offers_of(wanted)
    assert counter.count <= 3
    assert sorted(found) == sorted([("alice", r) for r in many(70)] + [("dave", "r001")])
    assert found[("dave", "r001")].seq == 2 and found[("alice", "r005")].seq == 1
    assert found[("alice", "r005")] == backend.consent.offer("alice", "r005")
    assert backend.consent.offers_of([]) == {}


def test_put_offers_makes_new_ones_counted_replaces_the_others_as_put_offer_would(
        backend, monkeypatch):
    since = "2000-01-01T00:00:00+00:00"
    backend.consent.put_offer(Offer("alice", "bob", 1, book="bob/contacts", href="a.vcf"))
    first = backend.consent.offer("alice", "bob")
    assert first is not None
    counter = Statements(backend, monkeypatch)
    backend.consent.put_offers(
        [(Offer("alice", "bob", 2, idx.OFFER_POSTPONED, until="2030-01-01T00:00:00+00:00"),
          True)]                                                        # replaced
        + [(Offer("alice", r, 2), True) for r in many(60)]              # new, counted
        + [(Offer("alice", "carol", 2), False)]                         # new, first share
        + [(Offer("erin", "r001", 5), True), (Offer("erin", "r001", 6), True)])  # last stays
    assert counter.count <= 10  # a few statements for 64 offers
    bob = backend.consent.offer("alice", "bob")
    assert (bob.seq, bob.state, bob.book, bob.until) == (
        2, idx.OFFER_POSTPONED, None, "2030-01-01T00:00:00+00:00")
    assert bob.first_offered == first.first_offered  # kept, as by put_offer
    assert backend.consent.offer("alice", "carol").seq == 2
    assert backend.consent.offer("erin", "r001").seq == 6
    assert len(backend.consent.offers_from("alice")) == 62
    # counted: the 60 new ones and bob's first offer; not carol's, not bob's replacement
    assert backend.consent.new_offers_since("alice", since) == 61
    assert backend.consent.new_offers_since("erin", since) == 1
    backend.consent.put_offers([])  # nothing: no error
    # made again: no new offer of the day (as put_offer)
    backend.consent.put_offers([(Offer("alice", r, 3), True) for r in many(60)])
    assert backend.consent.new_offers_since("alice", since) == 61


def test_put_offers_join_an_outer_transaction(backend):
    with pytest.raises(RuntimeError):
        with backend.transaction():
            backend.consent.put_offers([(Offer("alice", "bob", 1), True)])
            raise RuntimeError("rolled back")
    assert backend.consent.offer("alice", "bob") is None
    assert backend.consent.new_offers_since("alice", "2000-01-01T00:00:00+00:00") == 0


def test_offers_made_at_once_by_two_processes_are_counted_once(backend):
    job = change(backend, "+1 202 555 0111")
    since = "2000-01-01T00:00:00+00:00"
    both = [(Offer("alice", r, job.seq), True) for r in ("bob", "carol")]
    _raced(backend, lambda ix: ix.consent.put_offers(both),
           lambda ix: ix.consent.put_offers(both))
    assert backend.consent.new_offers_since("alice", since) == 2
    backend.consent.put_offers([(Offer("alice", "dave", job.seq), True)])  # positive control
    assert backend.consent.new_offers_since("alice", since) == 3


def test_of_books_gives_each_book_its_live_subscriptions_in_one_read(backend, monkeypatch):
    backend.push.put(push_subscription("a2", resource="https://p/2", created=200.0))
    backend.push.put(push_subscription("a1", resource="https://p/1", created=150.0))
    backend.push.put(push_subscription("old", resource="https://p/o", expires=1000.0))
    backend.push.put(push_subscription("b", user="bob", book="bob/contacts",
                                       resource="https://p/b"))
    books = ["alice/contacts", "bob/contacts", "carol/contacts"] + [
        "u%03d/contacts" % i for i in range(600)]  # more than one statement's list
    counter = Statements(backend, monkeypatch)
    found = backend.push.of_books(books, 1500.0)
    assert counter.count <= 3
    assert set(found) == set(books)
    for book in books:  # as of_book, book by book
        assert found[book] == backend.push.of_book(book, 1500.0)
    assert [s.id for s in found["alice/contacts"]] == ["a1", "a2"]
    assert [s.id for s in found["bob/contacts"]] == ["b"]
    assert found["carol/contacts"] == [] and backend.push.of_books([], 0.0) == {}


def test_queued_push_messages_keep_one_per_subscription_the_last_given(backend):
    for n in range(3):
        backend.push.put(push_subscription("s%d" % n, resource="https://p/%d" % n))
    backend.push.queue_put([idx.PushQueued("s0", "alice/contacts", 10.0, 1)])
    backend.push.queue_put([idx.PushQueued("s0", "alice/contacts", 20.0, 2),
                            idx.PushQueued("s1", "alice/contacts", 30.0, 1),
                            idx.PushQueued("s1", "alice/contacts", 40.0, 3)])
    assert [(m.subscription, m.due, m.attempt) for m in backend.push.queued()] == [
        ("s0", 20.0, 2), ("s1", 40.0, 3)]


def test_card_pages_give_the_cards_of_cards_of_in_pages_each_card_with_its_keys(backend):
    keys = [A, B, C, MAIL, "mailto:x@example.org", "tel:+12025550144"]
    mine = [card("bob/contacts", "c%d.vcf" % i, keys[i % 6], keys[(i + 1) % 6])
            for i in range(7)]  # neighbours share keys: a page's keys are its own cards'
    group = IndexedCard("bob/contacts", "g.vcf", "g", True, frozenset({A}), name="Family",
                        members=("urn:uuid:c1",))
    mine += [group, card("bob/work", "w1.vcf", B), card("bob/work", "w2.vcf")]
    for c in mine + [card(book, "x.vcf", A) for book in ("bo/contacts", "bobby/contacts",
                                                         "Bob/contacts")]:
        backend.cards.put(c)
    whole = backend.cards.cards_of("bob")
    for size in (1, 3, 8, 2000):  # 8: exactly one book's cards, no empty page after it
        pages = list(backend.cards.card_pages("bob", size))
        assert all(0 < len(page) <= size for page in pages)
        assert [c for page in pages for c in page] == sorted(mine, key=lambda c: (
            c.book, c.href)) == sorted(whole, key=lambda c: (c.book, c.href))
    assert len(list(backend.cards.card_pages("bob", 8))) == 2  # bob/contacts, bob/work
    assert list(backend.cards.card_pages("erin")) == []
    assert backend.cards.groups_of("bob") == [group]
    assert backend.cards.groups_of("bo") == [] and backend.cards.groups_of("erin") == []
    # a card read alone carries its own keys, not its book's
    assert backend.cards.card("bob/contacts", "c1.vcf") == mine[1]


def test_a_book_read_again_in_parts_is_marked_until_its_last_part(backend):
    old = [card("bob/contacts", "old%d.vcf" % i, A) for i in range(3)]
    backend.cards.replace_book("bob/contacts", old, 5)
    first = [card("bob/contacts", "p%d.vcf" % i, B) for i in range(2)]
    backend.cards.replace_book("bob/contacts", first, -1)  # the first part: read again
    backend.cards.set_book_mtime("bob/contacts", 6)         # a hook's write keeps the mark
    assert backend.cards.book_mtimes()["bob/contacts"] == -1
    rest = [card("bob/contacts", "q.vcf", C), card("bob/contacts", "p1.vcf", MAIL)]
    backend.cards.add_to_book("bob/contacts", rest[:1], -1)
    backend.cards.add_to_book("bob/contacts", rest[1:], 7)  # the last part ends it
    assert backend.cards.book_mtimes()["bob/contacts"] == 7
    assert backend.cards.cards_of("bob") == [first[0], rest[1], rest[0]]  # p1 replaced
    assert backend.cards.cards_with_keys("bob", [A]) == []


def test_a_part_finished_at_once_ends_its_claims_in_the_same_statement(backend,
                                                                       monkeypatch):
    recipients = many(100)
    planned(backend, *recipients)
    now = time.time()
    got = backend.outbox.claim("host:1:a", 100, now, 60)
    # decided again meanwhile (the recipient answered while the round ran): its finish
    # must not apply, but its claim ends all the same
    backend.outbox.reopen_for("r003", "alice", [idx.OFFERED])
    for d in got:
        d.state = idx.OFFERED
    counter = Statements(backend, monkeypatch)
    backend.outbox.finish_many(got)
    assert counter.count <= 2  # one statement per 50: finishes and claims together
    states = {r: backend.outbox.delivery("alice", r).state for r in recipients}
    assert states.pop("r003") == idx.PENDING
    assert set(states.values()) == {idx.OFFERED}
    # every claim ended: the one left pending is taken by another process at once
    assert claimed(backend.outbox.claim("host:2:b", 200, now, 60)) == [("alice", "r003")]


def test_a_part_finishing_one_pair_twice_gives_its_row_the_values_it_was_read_with(
        backend):
    planned(backend, "bob", "carol")
    now = time.time()
    got = backend.outbox.claim("host:1:a", 10, now, 60)
    bob = next(d for d in got if d.recipient == "bob")
    other = dataclasses.replace(bob, wanted_seq=bob.wanted_seq + 1, state=idx.FAILED)
    for d in got:
        d.state = idx.OFFERED
    backend.outbox.finish_many(got + [other])  # the row is at bob's change, not the other
    assert backend.outbox.delivery("alice", "bob").state == idx.OFFERED
    assert backend.outbox.delivery("alice", "carol").state == idx.OFFERED
    assert backend.outbox.claimants(now) == set()  # every claim ended

