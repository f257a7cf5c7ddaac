# SPDX-License-Identifier: GPL-3.0-or-later
"""Two processes and a slow mail server: the notification sender's duty lapses while it
still sends, and the other process takes the duty over — but not the batch being sent.

Only a batch whose sender is gone (its own lease lapsed: :mod:`radicale_plugin.notify.sender`)
is marked ``unknown``; one a living sender is still sending is left to it, and ends
``sent`` without ever having been told ``unknown`` (to the admin's status, to the log).
Runs on both backends (``both_backends``).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.server import RadicaleServer, wait_until
from tests.test_notify_e2e import FAST, sharing as offering
from tests.test_processes_e2e import NOTIFY_USERS, batches, notices, sql, two

pytestmark = pytest.mark.both_backends

#: How long the first process's mail server takes to accept a message: longer than the
#: sending duty's lease (1.5 s here: ``mecard_claim_lease`` 1, three polls of 0.5 s).
SLOW = 6.0
TAKEN_OVER = "was being sent when the server stopped"


@pytest.fixture
def slow_pair(tmp_path, storage_options):
    """Two processes under the shipped defaults but for the notification clock (as
    ``test_processes_e2e.notifying``) and a short lease (1 s, so that the duty lapses
    within a slow send); the first one's mail server is slow."""
    with two(tmp_path, storage_options, NOTIFY_USERS, both=True, **FAST,
             mecard_claim_lease="1") as servers:
        sink = servers[0].mail
        accept = sink.handle_DATA

        async def slowly(server, session, envelope) -> str:  # aiosmtpd's handler API
            await asyncio.sleep(SLOW)
            return await accept(server, session, envelope)
        sink.handle_DATA = slowly  # type: ignore[method-assign]
        yield servers


def log_of(server: RadicaleServer) -> str:
    return server.log.read_text(errors="replace")


def test_a_slow_sender_keeps_its_batch_when_the_other_process_takes_the_duty(slow_pair):
    a, b = slow_pair
    offering(a)  # Alice shares through A; Bob, asked, is told by e-mail, by A (first)
    wait_until(lambda: sql(a, "SELECT 1 FROM notify_batches WHERE state = 'sending'"), 30,
               "A sending Bob's notification")
    seen = set()
    deadline = time.time() + SLOW + 10
    while not notices((a, b)) and time.time() < deadline:
        seen |= {state for (state, _) in batches(a)}  # what the admin's status shows
        time.sleep(0.2)
    wait_until(lambda: batches(a) == [("sent", 1)], 30, "the batch recorded as sent")
    assert len(notices((a, b))) == 1  # sent once, by A
    assert "unknown" not in seen and "sending" in seen
    assert TAKEN_OVER not in log_of(a) + log_of(b)
    # the duty did change hands meanwhile (what made a take-over possible): B sends now
    (holder,), = sql(a, "SELECT holder FROM leases WHERE duty = 'notify-sender'")
    assert ":%d:" % b.process.pid in holder, (holder, a.process.pid, b.process.pid)


def test_a_sender_killed_mid_send_leaves_its_batch_unknown_to_the_other(slow_pair):
    """Positive control: a sender that died while sending (kill -9) is taken over, and its
    batch, which may have gone out, is told ``unknown`` and never sent again."""
    a, b = slow_pair
    offering(a)
    wait_until(lambda: sql(a, "SELECT 1 FROM notify_batches WHERE state = 'sending'"), 30,
               "A sending Bob's notification")
    a.kill()
    wait_until(lambda: batches(b) == [("unknown", 1)], 30, "B taking the batch over")
    assert TAKEN_OVER in log_of(b)
    time.sleep(3)
    assert notices((b,)) == []  # never sent again
