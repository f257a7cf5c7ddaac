# SPDX-License-Identifier: GPL-3.0-or-later
"""The stores of the contract written once in SQL, for every SQL backend.

Each module is one store of :mod:`radicale_plugin.index` (owners, keys, cards,
links, consent, outbox, history, push, invites, notify, leases, limits); ``claims`` and
``push_claims`` extend the outbox and the push store for several processes.  They speak to a
:class:`~radicale_plugin.index.sql.database.Database` — the few calls a store
needs (``execute``, ``rows``, ``value``, ``transaction``, ...), with ``?`` for
parameters — and never to a driver: :mod:`radicale_plugin.index.sqlite` and
:mod:`radicale_plugin.index.postgres` each give one, with their schema.  What the
two SQL dialects spell differently is asked of the database's ``dialect``.

May import: :mod:`radicale_plugin.index` (contract and records), the vCard core,
errors.  Never a backend.
"""
