# SPDX-License-Identifier: GPL-3.0-or-later
"""The fan-out: the durable background worker that turns the outbox into deliveries
and offers (:mod:`.worker`: the loop), a round's records in short transactions
(:mod:`.records`), and what becomes of a delivery that failed (:mod:`.outcomes`).

May import every part below it (base, index, vCard core, consent, owner, delivery,
recipient); only the service and the entry points import it.
"""
