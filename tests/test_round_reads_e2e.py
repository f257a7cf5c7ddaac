# SPDX-License-Identifier: GPL-3.0-or-later
"""A fan-out round on PostgreSQL reads the recipients' cards its decisions need at once
(issue 16): under ``ask`` each recipient's card that carries the owner's key (the card a
link would be made to) is read with the round's others, one statement per 200 cards, not
one statement a card; and the cards so read decide the offers as a card read alone would.

Counted by PostgreSQL itself: the server runs on a cluster of this module's own with
``pg_stat_statements`` loaded (the suite's shared cluster does not load it).
"""

from __future__ import annotations

from typing import Iterator

import psycopg
import pytest

from tests.postgres import Cluster, running
from tests.server import RadicaleServer, settled
from tests.test_fanout_e2e import person
from tests.test_offers_e2e import ALLY, offers, rows

RECIPIENTS = ["r%02d" % i for i in range(12)]
USERS = {"alice": "alice-pw", **{user: user + "-pw" for user in RECIPIENTS}}

#: A card read by itself (``storage.postgres.items.read``), and many read at once
#: (``delivery.copy_rows.CopyRows.read_many``).
ONE_CARD = "SELECT i.text, i.etag FROM dav_items i JOIN dav_collections c%"
MANY_CARDS = "WITH k(book, href) AS (VALUES%"


class CountingCluster(Cluster):
    """The suite's throwaway PostgreSQL, with statements counted."""

    SETTINGS = {**Cluster.SETTINGS, "shared_preload_libraries": "pg_stat_statements"}


@pytest.fixture(scope="module")
def counting() -> Iterator[Cluster]:
    yield from running(CountingCluster())


def calls(dsn: str, pattern: str) -> int:
    """How many times the server ran statements whose text is like ``pattern``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute(
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = current_database() AND s.query LIKE %s",
            (pattern,)).fetchone()[0])


def test_a_round_under_ask_reads_its_recipients_cards_at_once(counting, tmp_path):
    dsn = counting.migrated_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    # the shipped defaults (policy ask, nobody pre-authorised): the main scenario
    server = RadicaleServer(tmp_path, USERS, postgres=dsn).start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        others = {user: person(server, user) for user in RECIPIENTS}
        for client in others.values():  # a card of hers each (her e-mail, not her number)
            assert client.put("ally.vcf", ALLY).status_code == 201
        settled(alice)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        alice.api_ok("POST", "/targets", {"targets": ["user:%s" % u for u in RECIPIENTS]})
        settled(alice)
        one, many = calls(dsn, ONE_CARD), calls(dsn, MANY_CARDS)
        # each recipient's card was read (the offer names it), in one statement or two,
        # not in one statement a recipient
        assert one == 0, "%d cards read one statement each" % one
        assert 1 <= many <= 3
        found = rows(alice)
        for user, client in others.items():
            assert found[user]["state"] == "offered", found[user]
            (offer,) = offers(client)
            assert offer["owner"] == "alice" and offer["state"] == "pending"
            # the card read with the others is the one the offer proposes to update
            assert offer["card"]["path"] == "/%s/contacts/ally.vcf" % user, offer
    finally:
        server.stop()
