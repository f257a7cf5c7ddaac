# SPDX-License-Identifier: GPL-3.0-or-later
"""The fan-out: the durable background worker that turns the outbox into deliveries
and offers (:mod:`.worker`).

May import every part below it (base, index, vCard core, consent, owner, delivery,
recipient); only the service and the entry points import it.
"""
