# SPDX-License-Identifier: GPL-3.0-or-later
"""The digest decision (:mod:`radicale_plugin.notify.digest`, pure): which events go into
an e-mail when, and which are dropped."""
from __future__ import annotations

import datetime

from radicale_plugin.index import Offer
from radicale_plugin.index.records import (EVENT_CHANGED, EVENT_OFFER, EVENT_OFFER_DUE,
                                           OFFER_PENDING, OFFER_POSTPONED, OFFER_REFUSED,
                                           NotifyEvent)
from radicale_plugin.notify.digest import LONGEST_WAIT, Timing, decide, due_at

T0 = 1_800_000_000.0
TIMING = Timing(settle=120, spacing=3600)


def event(at: float, owner: str = "alice", kind: str = EVENT_OFFER, due: float | None = None,
          n: int = 0) -> NotifyEvent:
    return NotifyEvent("bob", owner, kind, n + 1, at, at if due is None else due, None, n + 1)


def pending(owner: str = "alice", until: float | None = None) -> Offer:
    if until is None:
        return Offer(owner, "bob", 1, OFFER_PENDING)
    return Offer(owner, "bob", 1, OFFER_POSTPONED, until=datetime.datetime.fromtimestamp(
        until, datetime.timezone.utc).isoformat())


def test_five_edits_in_a_minute_make_one_batch_after_the_quiet_window():
    edits = [event(T0 + 15 * i, n=i) for i in range(5)]
    offers = {"alice": pending()}
    for now in (T0 + 60, T0 + 60 + 119):  # still settling: nothing yet, wake at the end
        decision = decide(edits, offers, None, now, TIMING)
        assert decision.batch == [] and decision.wake == T0 + 60 + 120
    decision = decide(edits, offers, None, T0 + 180, TIMING)
    assert decision.batch == edits and decision.drop == [] and decision.wake is None


def test_a_steady_stream_of_edits_is_told_at_the_longest_wait():
    edits = [event(T0 + 60 * i, n=i) for i in range(16)]  # one a minute for a quarter hour
    assert due_at(edits, None, TIMING) == T0 + LONGEST_WAIT
    assert decide(edits, {"alice": pending()}, None, T0 + LONGEST_WAIT, TIMING).batch == edits


def test_at_most_one_message_per_digest_spacing():
    later = [event(T0 + 100)]
    last = T0  # an e-mail was made then
    decision = decide(later, {"alice": pending()}, last, T0 + 500, TIMING)
    assert decision.batch == [] and decision.wake == T0 + 3600
    assert decide(later, {"alice": pending()}, last, T0 + 3600, TIMING).batch == later
    # positive control: with no e-mail before, it goes after settling
    assert decide(later, {"alice": pending()}, None, T0 + 220, TIMING).batch == later


def test_events_of_several_owners_share_one_batch():
    events = [event(T0, "alice", n=0), event(T0 + 10, "carol", n=1),
              event(T0 + 20, "dave", EVENT_CHANGED, n=2)]
    offers = {"alice": pending("alice"), "carol": pending("carol")}
    assert decide(events, offers, None, T0 + 140, TIMING).batch == events


def test_answered_offers_are_dropped_and_applied_changes_are_not():
    refused = Offer("carol", "bob", 1, OFFER_REFUSED, refused_seq=1)
    events = [event(T0, "alice", n=0), event(T0, "carol", n=1), event(T0, "erin", n=2),
              event(T0, "dave", EVENT_CHANGED, n=3)]
    # alice's offer is gone (accepted or blocked), carol's refused, erin's waits
    decision = decide(events, {"carol": refused, "erin": pending("erin")}, None, T0 + 120,
                      TIMING)
    assert [e.owner for e in decision.drop] == ["alice", "carol"]
    assert [e.owner for e in decision.batch] == ["erin", "dave"]


def test_a_postponed_offer_waits_for_its_time_then_settles():
    until = T0 + 7200
    back = event(T0, kind=EVENT_OFFER_DUE, due=until)
    offers = {"alice": pending(until=until)}
    decision = decide([back], offers, None, T0 + 10, TIMING)
    assert decision.batch == [] and decision.drop == [] and decision.wake == until
    decision = decide([back], offers, None, until, TIMING)  # due, settling
    assert decision.batch == [] and decision.wake == until + 120
    assert decide([back], offers, None, until + 120, TIMING).batch == [back]


def test_an_offer_postponed_again_drops_its_first_return():
    first = event(T0, kind=EVENT_OFFER_DUE, due=T0 + 100)
    offers = {"alice": pending(until=T0 + 5000)}  # postponed again, further
    decision = decide([first], offers, None, T0 + 200, TIMING)
    assert decision.drop == [first] and decision.batch == []


def test_the_pending_offers_own_event_is_dropped_while_it_is_postponed():
    made = event(T0)
    offers = {"alice": pending(until=T0 + 5000)}
    assert decide([made], offers, None, T0 + 200, TIMING).drop == [made]


def test_nothing_waiting_needs_no_wake():
    decision = decide([], {}, T0, T0, TIMING)
    assert decision.batch == [] and decision.drop == [] and decision.wake is None
