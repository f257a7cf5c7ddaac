# SPDX-License-Identifier: GPL-3.0-or-later
"""Backups: the sharing state as one JSON document — its format (:mod:`.format`), the
export (:mod:`.export`) and the import into an empty index (:mod:`.importing`, reading
the document through :mod:`.record`, its notifications through :mod:`.notifications`).

The document is the backup of everything the collections cannot give back, and the
way from one backend to another: it is read and written through the index contract
only.  Part of the admin: may import every part below the HTTP face.
"""

from radicale_plugin.admin.backup.export import (delivery_json, dumps, export_state,
                                                 history_json, invites_json, key_json,
                                                 link_json, offer_json, owner_json,
                                                 subscription_json, timestamp, view_json)
from radicale_plugin.admin.backup.format import FORMAT, VERSION, BackupError
from radicale_plugin.admin.backup.importing import Export, import_state, read_export, restore

__all__ = ["FORMAT", "VERSION", "BackupError", "Export", "export_state", "import_state",
           "read_export", "restore", "dumps", "timestamp", "view_json", "owner_json",
           "key_json", "link_json", "offer_json", "delivery_json", "history_json",
           "invites_json", "subscription_json"]
