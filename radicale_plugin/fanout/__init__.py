# SPDX-License-Identifier: GPL-3.0-or-later
"""The fan-out: the durable background worker that turns the outbox into deliveries
and offers (:mod:`.worker`: the loop), a round's records in short transactions
(:mod:`.records`) — or, on the storage on PostgreSQL, copies and their records in one
transaction a part (:mod:`.at_once`) —, what becomes of a delivery that failed (:mod:`.outcomes`), and
the process's memory kept flat from one fan-out to the next (:mod:`.memory`).

May import every part below it (base, index, vCard core, consent, owner, delivery,
recipient); only the service and the entry points import it.
"""
