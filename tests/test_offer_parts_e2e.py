# SPDX-License-Identifier: GPL-3.0-or-later
"""A fan-out's offers are read and written a part at once (issue 16: a few statements for
a part, not a few an offer); if one of them cannot be written, that recipient's delivery
fails alone and the others of the part are offered all the same, on both storages.

The failure is a real one of the database: a trigger of the server's own index refuses
offers to one recipient (SQLite: ``RAISE(ABORT)``; PostgreSQL: an exception, which aborts
the transaction unless a savepoint guards it).
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from tests.server import Client, RadicaleServer, settled
from tests.test_fanout_e2e import person
from tests.test_offers_e2e import ALLY, offers, rows

pytestmark = pytest.mark.both_backends

RECIPIENTS = ("bob", "carol", "dave", "erin")


def refuse_offers_to(server: RadicaleServer, recipient: str) -> None:
    """From now on the index refuses to store an offer to ``recipient``."""
    if server.postgres:
        with psycopg.connect(server.postgres, autocommit=True) as conn:
            conn.execute("CREATE FUNCTION refuse_offer() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN RAISE EXCEPTION 'offers to % refused', NEW.recipient; END $$")
            conn.execute("CREATE TRIGGER refuse_offer BEFORE INSERT OR UPDATE ON offers "
                         "FOR EACH ROW WHEN (NEW.recipient = '%s') "
                         "EXECUTE FUNCTION refuse_offer()" % recipient)
        return
    conn = sqlite3.connect(server.root / "collections" / ".mecard.sqlite", timeout=30)
    try:
        for event in ("INSERT", "UPDATE"):
            conn.execute("CREATE TRIGGER refuse_offer_%s BEFORE %s ON offers WHEN "
                         "NEW.recipient = '%s' BEGIN SELECT RAISE(ABORT, 'offers to %s "
                         "refused'); END" % (event, event, recipient, recipient))
        conn.commit()
    finally:
        conn.close()


def shared_with_all(server: RadicaleServer) -> tuple[Client, dict[str, Client]]:
    """Alice, and four recipients who each have a card of hers (her e-mail, not her
    number): under the default policy her number is offered to each."""
    alice = person(server, "alice", "alice-me.vcf")
    others = {user: person(server, user) for user in RECIPIENTS}
    for client in others.values():
        assert client.put("ally.vcf", ALLY).status_code == 201
    return alice, others


def test_an_offer_the_database_refuses_fails_that_delivery_alone(public_server):
    alice, others = shared_with_all(public_server)
    refuse_offers_to(public_server, "carol")
    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % u for u in RECIPIENTS]})
    settled(alice)
    found = rows(alice)
    # the others of the part (one round, one part: 4 deliveries) are offered all the same
    for user in ("bob", "dave", "erin"):
        assert found[user]["state"] == "offered", found[user]
        (offer,) = offers(others[user])
        assert offer["owner"] == "alice" and offer["state"] == "pending"
    assert found["carol"]["state"] in ("failed", "pending"), found["carol"]
    assert found["carol"]["state"] != "offered"
    assert offers(others["carol"]) == []


def test_a_part_of_offers_is_made_whole_when_nothing_fails(public_server):
    """Positive control: the same fan-out with no refusal offers the change to everyone,
    each once."""
    alice, others = shared_with_all(public_server)
    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % u for u in RECIPIENTS]})
    settled(alice)
    assert {u: r["state"] for u, r in rows(alice).items() if u in RECIPIENTS} == dict.fromkeys(
        RECIPIENTS, "offered")
    seqs = {user: [o["seq"] for o in offers(client)] for user, client in others.items()}
    assert len({s for found in seqs.values() for s in found}) == 1
    assert all(len(found) == 1 for found in seqs.values())
