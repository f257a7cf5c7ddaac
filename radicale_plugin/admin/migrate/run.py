# SPDX-License-Identifier: GPL-3.0-or-later
"""``migrate-to-postgres``: a file deployment copied into an empty PostgreSQL database, and
its ``--check``, which compares both card by card.

The copy is one PostgreSQL transaction: every collection with its properties and items
(through Radicale's storage API on both sides, :mod:`.collections`) and the whole
sharing state (the backup's export of the SQLite database imported into the index on
PostgreSQL, :mod:`radicale_plugin.admin.backup`).  A failure, or the command killed,
leaves the database as empty as it was, and the same command is run again.  The source
must not change meanwhile: the command refuses to run while a server runs on the
sharing database (the mark an import checks, :mod:`radicale_plugin.index.running`), and
keeps servers from starting until it is done.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Iterator

from radicale import config
from radicale import storage as radicale_storage
from radicale.storage import multifilesystem

from radicale_plugin.admin import backup
from radicale_plugin.admin.migrate import collections, state
from radicale_plugin.admin.migrate.open import FILE_STORAGES, Target, open_target
from radicale_plugin.admin.migrate.target import TargetError, describe
from radicale_plugin.index import running
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.settings import Settings

Say = Callable[[str], None]


class MigrationError(RuntimeError):
    """The migration cannot start or did not finish; ``str()`` is the one line to read."""


def _source(configuration: config.Configuration, settings: Settings
            ) -> tuple[radicale_storage.BaseStorage, SQLiteIndex]:
    kind = configuration.get("storage", "type")
    if kind not in FILE_STORAGES:
        raise MigrationError("the config's storage is %s, not files: give the config of the "
                             "file deployment to copy (--config)" % kind)
    if not os.path.exists(settings.database):
        raise MigrationError("no sharing database at %s: a deployment is migrated with its "
                             "sharing state (start the server once, or import the last "
                             "export, or rebuild)" % settings.database)
    return multifilesystem.Storage(configuration), SQLiteIndex(settings.database,
                                                                settings.region)


def _count_items(store: radicale_storage.BaseStorage) -> int:
    """The item files under the collection root (the progress bar's total), quickly."""
    root = store._get_collection_root_folder()  # type: ignore[attr-defined]
    total = 0
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if not f.startswith(".Radicale")]
        if os.path.exists(os.path.join(folder, ".Radicale.props")):
            total += sum(1 for f in files if not f.startswith(".Radicale"))
    return total


def _progress(total: int, what: str):  # type: ignore[no-untyped-def]
    from tqdm import tqdm
    return tqdm(total=total, desc=what, unit=" item", disable=not sys.stderr.isatty(),
                leave=True)


def migrate(configuration: config.Configuration, settings: Settings, dsn: str,
            say: Say = print) -> None:
    """Copy the deployment of ``configuration`` into the empty database ``dsn``."""
    # a server would go on writing into the files meanwhile, and what it wrote be lost
    with running.alone(settings.database, "migrating it to PostgreSQL"):
        source, index = _source(configuration, settings)
        try:
            target = open_target(configuration, dsn, create=True)
            try:
                counts = _copy(source, index, target, settings.region)
            finally:
                target.close()
        finally:
            index.close()
    say("migrated into %s: %d collection(s) (%d address book(s), %d calendar(s)), "
        "%d item(s); sharing state: %s" % (
            describe(dsn), counts.pop("collections"), counts.pop("address books"),
            counts.pop("calendars"), counts.pop("items"),
            ", ".join("%d %s" % (n, what) for what, n in counts.items() if n) or "empty"))
    say("sync tokens start afresh on PostgreSQL: each client syncs each collection once in "
        "full (ETags are kept: a client that compares them downloads nothing again)")
    if os.path.exists(settings.push_vapid_key):  # a file: not in the database
        say("push subscriptions are bound to the key %s: give every host that file "
            "(mecard_push_vapid_key)" % settings.push_vapid_key)
    say("next: compare both with `migrate-to-postgres --check`, then start the server on "
        "PostgreSQL (docs/postgresql.md)")


def _copy(source: radicale_storage.BaseStorage, index: SQLiteIndex, target: Target,
          region: str) -> dict[str, int]:
    document = json.loads(backup.dumps(backup.export_state(index, region)))
    counts = {"collections": 0, "address books": 0, "calendars": 0, "items": 0}
    at = "the start"
    try:
        with target.transaction():  # all or nothing: a failure leaves the database empty
            target.refuse_unless_empty()
            with _progress(_count_items(source), "items") as bar:
                for found in collections.walk(source):
                    at = found.href()
                    if found.unreadable:
                        raise MigrationError(
                            "%d item(s) Radicale cannot read (it skips them): %s; repair or "
                            "remove them" % (len(found.unreadable),
                                             ", ".join(found.unreadable[:5])))
                    counts["items"] += collections.copy_collection(found, target.storage)
                    counts["collections"] += 1
                    if found.tag == "VADDRESSBOOK":
                        counts["address books"] += 1
                    elif found.tag == "VCALENDAR":
                        counts["calendars"] += 1
                    bar.update(len(found.items))
            at = "the sharing state"
            counts.update(backup.restore(target.index, backup.read_export(document, region)))
            at = "the commit"
    except TargetError:
        raise  # says itself that nothing was written
    except (Exception, KeyboardInterrupt) as e:
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else \
            " ".join(str(e).split()) or type(e).__name__
        raise MigrationError(
            "the migration stopped at %s: %s; nothing was written to %s (the copy is one "
            "transaction, taken back): fix that, then run the same command again"
            % (at, why, describe(target.dsn))) from e
    return counts


def check(configuration: config.Configuration, settings: Settings, dsn: str,
          say: Say = print) -> int:
    """Compare the deployment with the database ``dsn``: 0 when they agree, 1 with one line
    per difference."""
    source, index = _source(configuration, settings)
    try:
        target = open_target(configuration, dsn, create=False)
        try:
            seen = {"collections": 0, "items": 0}
            # said once the progress bar is gone (it shares the terminal)
            problems = list(_differences(source, index, target, settings.region, seen))
        finally:
            target.close()
    finally:
        index.close()
    for line in problems:
        say(line)
    if problems:
        return 1
    say("the same: %d collection(s), %d item(s) (text and ETag), properties and the whole "
        "sharing state" % (seen["collections"], seen["items"]))
    return 0


def _differences(source: radicale_storage.BaseStorage, index: SQLiteIndex, target: Target,
                 region: str, seen: dict[str, int]) -> Iterator[str]:
    with _progress(_count_items(source), "compared") as bar:
        root_a, root_b = collections.read(source, ""), collections.read(target.storage, "")
        pending = sorted(set(root_a.children if root_a else []) |
                         set(root_b.children if root_b else []), reverse=True)
        while pending:
            path = pending.pop()
            a, b = collections.read(source, path), collections.read(target.storage, path)
            if a is not None and a.unreadable:
                yield "collection %s: %d item(s) Radicale cannot read in files: %s" % (
                    a.href(), len(a.unreadable), ", ".join(a.unreadable[:5]))
            yield from collections.differences(a, b, path)
            seen["collections"] += 1
            seen["items"] += len(a.items) if a else 0
            bar.update(len(a.items) if a else 0)
            pending.extend(sorted(set(a.children if a else []) | set(b.children if b else []),
                                  reverse=True))
    mine = json.loads(backup.dumps(backup.export_state(index, region)))
    theirs = json.loads(backup.dumps(backup.export_state(target.index, region)))
    yield from state.differences(mine, theirs)
