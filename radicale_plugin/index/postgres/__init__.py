# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing index on PostgreSQL: the same stores as SQLite's, on a shared database.

Several Radicale processes, on several hosts, use one database: there is no
writer lock, transactions and row locks keep them apart (:mod:`.database`).
The stores are :mod:`radicale_plugin.index.sql`'s; this package gives their
connections, the schema and what only PostgreSQL does.

May import: :mod:`radicale_plugin.index` (contract, records), :mod:`radicale_plugin.index.sql`,
the vCard core, errors, psycopg.
"""
