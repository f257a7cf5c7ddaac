# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's storage on PostgreSQL, with sharing: ``[storage] type = radicale_plugin.storage.postgres``.

The same product as the file storage (:mod:`radicale_plugin.storage`) — me cards,
consent, the fan-out — with collections and the sharing state in one PostgreSQL
database (``postgresql_dsn``), served by as many Radicale processes on as many hosts as
needed.  The parts: :mod:`.plain` (Radicale's storage interface on the tables of
:mod:`.schema`, no sharing: ``type = radicale_plugin.storage.postgres.plain``),
:mod:`.collection`, :mod:`.items` (one card read or written inside the caller's
transaction: the fan-out's copies), :mod:`.connection` (one database per DSN and
process), and :mod:`.sharing` (the plain classes with the sharing hooks: exported here).

The part of the house: an entry point (Radicale loads it by name); it may import every
part below it.
"""

from radicale_plugin.storage.postgres.sharing import Collection, Storage

__all__ = ["Collection", "Storage"]
