# SPDX-License-Identifier: GPL-3.0-or-later
"""The admin command: ``python -m radicale_plugin --config FILE COMMAND``.

    verify-key USER KEY     verify a number or e-mail for USER (as a code would)
    unverify-key USER KEY   end USER's verification of KEY
    keys USER               USER's keys and their states
    rebuild-index           read every address book into the card-key index again
    schema                  the sharing database's schema version (changes nothing)
    status [--json]         queue, failed deliveries, push subscriptions, schema version
    check                   compare the collections with the sharing database: exit 0 when
                            they agree, 1 with one line per difference
    rebuild                 bring back what the collections tell: the card-key index, me
                            cards (CS:me-card) and the links of copies the server created
    export [FILE]           the whole sharing state as JSON (to FILE, mode 0600, or stdout)
    import FILE             load an export into an empty sharing database (FILE - : stdin)
    delete-user USER [--withdraw]
                            delete USER's sharing state; --withdraw also removes their
                            values from the copies in others' books (the server does it)
    export-user USER        USER's own sharing data as JSON
    migrate-to-postgres DSN [--check]
                            copy every collection and the whole sharing state into the
                            empty PostgreSQL database DSN (the server stopped); --check
                            compares both, card by card: exit 1 with one line per difference

It works on the same files as the server, and may run while the server
runs (the database serialises writers); the server's fan-out picks up
what it queues at its next poll (``mecard_poll_interval``).  ``import`` and
``migrate-to-postgres`` are the exceptions: they are refused while a server runs on the
database.  Only
``import`` and ``rebuild`` create a missing sharing database: any other
command would hide its loss from the server's check at start.  ``check``,
``rebuild`` and ``rebuild-index`` read the books without Radicale's storage
lock and take it for each book only to compare or store it.

``--config`` reads the config as ``radicale`` does: ``a.conf:b.conf``, a
``?`` before an optional file, else ``RADICALE_CONFIG``, else Radicale's
default paths.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sqlite3
import sys
import time
from typing import Any, Iterator, Sequence

from radicale import config
from radicale import storage as radicale_storage
from radicale.log import logger
from radicale.storage import multifilesystem

from radicale_plugin import command_line
from radicale_plugin.admin import accounts
from radicale_plugin.admin import backup
from radicale_plugin.admin import migrate
from radicale_plugin.delivery import recovery
from radicale_plugin.index import running
from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.delivery.copy_files import CopyFiles
from radicale_plugin.errors import SharingError
from radicale_plugin.service import SharingService
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.index.sqlite.database import Database
from radicale_plugin.index.sqlite.schema import SchemaError, check_columns, version_of
from radicale_plugin.owner.verification import normalize_key

#: Commands that may create the sharing database (they restore it).
_CREATE = ("import", "rebuild")


class AdminError(RuntimeError):
    """Bad input or state; ``str()`` is the one line the admin reads."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m radicale_plugin",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("-C", "--config", default=None,
                        help="the server's Radicale config file(s), as for radicale: "
                        "a.conf:b.conf, ?PATH for an optional one (default: $RADICALE_CONFIG, "
                        "else Radicale's default paths)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("verify-key", "unverify-key"):
        p = sub.add_parser(name)
        p.add_argument("user")
        p.add_argument("key", help="a phone number or e-mail (tel:+..., mailto:... or as written)")
    sub.add_parser("keys").add_argument("user")
    sub.add_parser("rebuild-index")
    sub.add_parser("schema")
    sub.add_parser("status").add_argument("--json", action="store_true",
                                          help="one JSON object, for monitoring")
    sub.add_parser("check")
    sub.add_parser("rebuild")
    sub.add_parser("export").add_argument("file", nargs="?", default="-",
                                          help="where to write (default: stdout)")
    sub.add_parser("import").add_argument("file", help="an export (- : stdin)")
    p = sub.add_parser("delete-user")
    p.add_argument("user")
    p.add_argument("--withdraw", action="store_true",
                   help="remove the user's values from the copies in others' books")
    sub.add_parser("export-user").add_argument("user")
    p = sub.add_parser("migrate-to-postgres")
    p.add_argument("dsn", help="the PostgreSQL database's connection string, e.g. "
                   "\"host=db.example.org dbname=radicale user=radicale\" (a password in "
                   "~/.pgpass or PGPASSWORD)")
    p.add_argument("--check", action="store_true",
                   help="compare the files with the database (changes nothing)")
    return parser


def _configuration(paths: str | None) -> config.Configuration:
    """The config as radicale reads it (``parse_compound_paths``: the last of ``--config``,
    ``RADICALE_CONFIG`` and the default paths that is given), with the plugin's options."""
    return config.load(command_line.config_paths(paths)).copy(PLUGIN_CONFIG_SCHEMA)


def _service(configuration: config.Configuration, settings: Settings) -> SharingService:
    # plain file storage: no hooks and no worker in this process
    store = multifilesystem.Storage(configuration)
    return SharingService(store, settings, SQLiteIndex(settings.database, settings.region),
                          configuration)


def _no_database(settings: Settings) -> AdminError:
    return AdminError("no sharing database at %s (the server makes it at its first start; "
                      "if it was lost, see docs/operating.md, 'Backups and restore': import the last "
                      "export, or rebuild)" % settings.database)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; 0 on success, 1 with one line of advice otherwise
    (``check``: 1 and one line per difference)."""
    args = _parser().parse_args(argv)
    # Radicale's own notes (a storage folder it creates, ...) are not the admin's business
    # here, and would break the one line an error is
    logger.setLevel(logging.ERROR)
    try:
        configuration = _configuration(args.config)
        settings = Settings.from_configuration(configuration)
        exists = os.path.exists(settings.database)
        if args.command == "schema":
            # only looks: opening the index would migrate it
            if not exists:
                raise _no_database(settings)
            print("schema version %d (this code writes %d)"
                  % (_version(settings.database, check=True), SQLiteIndex.SCHEMA_VERSION))
            return 0
        if args.command == "check":
            return _check(configuration, settings, missing=not exists)
        if args.command == "migrate-to-postgres":
            if args.check:
                return migrate.check(configuration, settings, args.dsn)
            migrate.migrate(configuration, settings, args.dsn)
            return 0
        if not exists and args.command not in _CREATE:
            raise _no_database(settings)
        # the version as found: opening the index migrates it
        found = _version(settings.database) if args.command == "status" else 0
        # an export is read and checked before a database is opened (or made) for it
        export = backup.read_export(_read_json(args.file), settings.region) \
            if args.command == "import" else None
        # a server would go on with what it holds in memory, and write meanwhile
        alone = running.alone(settings.database, "an import") if export is not None \
            else contextlib.nullcontext()
        with alone, _made_for(settings.database, created=not exists):
            service = _service(configuration, settings)
            try:
                if args.command == "status":
                    _status(service, found, args.json)
                elif export is not None:
                    counts = backup.restore(service.index, export)
                    print("imported into %s: %s" % (settings.database, ", ".join(
                        "%d %s" % (n, what) for what, n in counts.items())))
                else:
                    _run(service, args)
            finally:
                service.index.close()
    except (SharingError, SchemaError, backup.BackupError, RuntimeError, OSError,
            sqlite3.Error) as e:
        print("python -m radicale_plugin: %s" % e, file=sys.stderr)
        return 1
    return 0


def _run(service: SharingService, args: argparse.Namespace) -> None:
    """The commands that work on an opened service."""
    index, ctx = service.index, service.ctx
    if args.command == "rebuild-index":
        holds = LockHolds(service.storage)
        read = service.card_keys.rebuild(service.deliverer.files, hold=lambda: holds("r"))
        print("card-key index rebuilt from %d address book(s)" % read)
        print(holds.summary())
    elif args.command == "keys":
        print(json.dumps(service.verification.keys_of(args.user), indent=1))
    elif args.command in ("verify-key", "unverify-key"):
        key = normalize_key(args.key, service.ctx.region_of(args.user))
        if args.command == "verify-key":
            previous = service.verification.mark_verified(args.user, key)
            print("%s verified for %s%s" % (key, args.user, " (it moved from %s)" % previous
                                             if previous else ""))
        else:
            index.keys.unverify(args.user, key)
            service.owners.refresh_keys(args.user)
            print("%s is no longer verified for %s" % (key, args.user))
    elif args.command == "rebuild":
        _rebuild(service)
    elif args.command == "export":
        _write(args.file, backup.dumps(backup.export_state(index, service.settings.region)))
    elif args.command == "delete-user":
        done = accounts.delete_user(ctx, args.user, args.withdraw)
        print("sharing state of %s deleted: %d link(s), %d offer(s), %d delivery(ies), "
              "%d key(s), %d history entry(ies)" % (args.user, done.links, done.offers,
                                                    done.deliveries, done.keys, done.history))
        if done.targeted_by:
            print("removed from the targets of %s" % ", ".join(done.targeted_by))
        if done.withdrawing:
            print("%d withdrawal(s) queued (%s): the server's worker makes them at its next "
                  "poll; run delete-user %s again afterwards to drop what they need"
                  % (len(done.withdrawing), ", ".join(done.withdrawing), args.user))
    elif args.command == "export-user":
        print(json.dumps(accounts.export_user(ctx, args.user), indent=1, ensure_ascii=False))


@contextlib.contextmanager
def _made_for(database: str, created: bool) -> Iterator[None]:
    """A database this command made is removed again if the command fails: an empty one
    left behind would hide the loss of the real one from the server's check at start."""
    try:
        yield
    except BaseException:
        if created:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(database + suffix)
        raise


def _version(path: str, check: bool = False) -> int:
    """The database's schema version; ``check``: also refuse one that lacks a table or
    column its version has (:func:`check_columns`)."""
    db = Database(path)
    try:
        version = version_of(db)
        if check and version == SQLiteIndex.SCHEMA_VERSION:
            check_columns(db, version)
        return version
    finally:
        db.close()


class LockHolds:
    """Radicale's storage lock, taken for one book (or card) at a time: how often, and the
    longest hold, so that the admin sees that writers never waited for a whole scan."""

    def __init__(self, storage: radicale_storage.BaseStorage) -> None:
        self._storage = storage
        self.count = 0
        self.longest = 0.0

    @contextlib.contextmanager
    def __call__(self, mode: str) -> Iterator[None]:
        with self._storage.acquire_lock(mode):
            began = time.monotonic()
            try:
                yield
            finally:
                self.count += 1
                self.longest = max(self.longest, time.monotonic() - began)

    def summary(self) -> str:
        return ("Radicale's storage lock: taken %d time(s), one book or card at a time, "
                "held %.1f ms at most" % (self.count, self.longest * 1000))


# -- status --------------------------------------------------------------------------------

def status(index: idx.SharingIndex, database: str, found_version: int) -> dict[str, Any]:
    """What a monitoring system wants to know, as one JSON object."""
    now = time.time()
    counts = index.outbox.counts(now)
    pending = counts.states.get(idx.PENDING, 0)
    withdrawing = counts.states.get(idx.WITHDRAWING, 0)
    return {"database": database, "schema_version": found_version,
            "schema_current": index.SCHEMA_VERSION,
            "queue": counts.jobs + pending + withdrawing, "jobs": counts.jobs,
            "oldest_job": counts.oldest_job, "pending": pending, "withdrawing": withdrawing,
            "due": counts.due, "failed": counts.states.get(idx.FAILED, 0),
            "deliveries": counts.states, "subscriptions": index.push.count(now)}


def _status(service: SharingService, found: int, as_json: bool) -> None:
    report = status(service.index, service.settings.database, found)
    if as_json:
        print(json.dumps(report, indent=1))
        return
    print("schema version %d%s" % (found, " (current)" if found == report["schema_current"]
                                  else " (migrated to %d now)" % report["schema_current"]))
    print("queue: %d change(s) to plan%s, %d delivery(ies) and %d withdrawal(s) waiting "
          "(%d due now)" % (report["jobs"], " (oldest queued %s)" % report["oldest_job"]
                            if report["oldest_job"] else "", report["pending"],
                            report["withdrawing"], report["due"]))
    print("failed deliveries: %d" % report["failed"])
    print("push subscriptions: %d" % report["subscriptions"])


# -- check and rebuild ---------------------------------------------------------------------

def _check(configuration: config.Configuration, settings: Settings, missing: bool) -> int:
    store = multifilesystem.Storage(configuration)
    # a missing database is not created: an empty stand-in in memory takes its place
    index = SQLiteIndex(":memory:" if missing else settings.database, settings.region)
    files = CopyFiles(store)
    holds = LockHolds(store)
    try:
        # each book is compared with its index under the lock, one at a time
        problems = recovery.check(store, files, index,
                                  Context(store, settings, index).region_of,
                                  settings.database, missing, lock=holds)
        books = sum(1 for _ in files.books())
        for line in problems:
            print(line)
        if problems:
            return 1
        print("consistent: %d me card(s), %d link(s), %d address book(s)"
              % (len(index.owners.with_me_card()), len(index.links.all()), books))
        print(holds.summary())
        return 0
    finally:
        files.close()
        index.close()


def _rebuild(service: SharingService) -> None:
    holds = LockHolds(service.storage)
    done = recovery.rebuild(service.storage, service.deliverer.files, service.index,
                            service.card_keys, service.owners, lock=holds)
    print("card-key index rebuilt from %d address book(s)" % done.books)
    print("%d me card(s) designated again%s" % (len(done.me_cards), ": " + ", ".join(
        done.me_cards) if done.me_cards else ""))
    print("%d link(s) of created copies made again%s" % (len(done.links), "".join(
        "\n  %s -> /%s/%s" % (c.owner, c.book, c.href) for c in done.links)))
    for line in done.left:
        print(line)
    print("not in the collections (only an export brings them back): targets, shared fields, "
          "key verifications, policies, offers, history, links of accepted or verified cards")
    print(holds.summary())


# -- files -----------------------------------------------------------------------------------

def _read_json(path: str) -> Any:
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise AdminError("%s is not a JSON export: %s" % ("stdin" if path == "-" else path,
                                                          e)) from e


def _write(path: str, text: str) -> None:
    """To stdout, or to ``path`` whole or not at all, readable by its owner only (it holds
    people's numbers and push secrets)."""
    if path == "-":
        sys.stdout.write(text)
        return
    temporary = "%s.tmp-%d" % (path, os.getpid())
    with _removed_on_error(temporary):
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    print("exported to %s" % path, file=sys.stderr)


@contextlib.contextmanager
def _removed_on_error(path: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
