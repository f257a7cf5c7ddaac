# SPDX-License-Identifier: GPL-3.0-or-later
"""Every store of the contract on one SQL database: what each backend's index carries."""

from __future__ import annotations

from radicale_plugin import index
from radicale_plugin.index.sql.cards import SQLCardIndex
from radicale_plugin.index.sql.claims import ClaimingOutbox
from radicale_plugin.index.sql.consent import SQLConsentStore
from radicale_plugin.index.sql.database import Database
from radicale_plugin.index.sql.history import SQLHistoryLog
from radicale_plugin.index.sql.invites import SQLInviteStore
from radicale_plugin.index.sql.keys import SQLKeyStore
from radicale_plugin.index.sql.leases import SQLLeaseStore
from radicale_plugin.index.sql.limits import SQLLimitStore
from radicale_plugin.index.sql.links import SQLLinkStore
from radicale_plugin.index.sql.notify import SQLNotifyStore
from radicale_plugin.index.sql.owners import SQLOwnerStore
from radicale_plugin.index.sql.push_claims import ClaimingPushStore


def attach(ix: index.SharingIndex, db: Database) -> None:
    """Give ``ix`` every store of the contract, on ``db``."""
    ix.owners = SQLOwnerStore(db)
    ix.keys = SQLKeyStore(db)
    ix.cards = SQLCardIndex(db)
    ix.links = SQLLinkStore(db)
    ix.consent = SQLConsentStore(db)
    ix.outbox = ClaimingOutbox(db)  # the outbox, claimed with leases
    ix.history = SQLHistoryLog(db)
    ix.push = ClaimingPushStore(db)  # its queue held per process
    ix.invites = SQLInviteStore(db)
    ix.notify = SQLNotifyStore(db)
    ix.leases = SQLLeaseStore(db)
    ix.limits = SQLLimitStore(db)
