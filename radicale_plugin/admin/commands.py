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

It works on the same deployment as the server, files or PostgreSQL as the config's
``[storage] type`` says (:mod:`.backend`), and may run while servers run (the
database serialises writers); the server's fan-out picks up
what it queues at its next poll (``mecard_poll_interval``).  ``import`` and
``migrate-to-postgres`` are the exceptions: they are refused while a server runs on the
database (on PostgreSQL: while any server holds its advisory lock).  On PostgreSQL
``delete-user`` also deletes the user's collections, in the same transaction.  Only
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

import psycopg
from psycopg_pool import PoolTimeout
from radicale import config
from radicale.log import logger

from radicale_plugin import command_line
from radicale_plugin.admin import accounts
from radicale_plugin.admin import backup
from radicale_plugin.admin import migrate
from radicale_plugin.admin.backend import Deployment, LockHolds
from radicale_plugin.delivery import recovery
from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.errors import SharingError
from radicale_plugin.service import SharingService, copy_writer, open_index
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings
from radicale_plugin.index.postgres.schema import SchemaError as PostgresSchemaError
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.index.sqlite.schema import SchemaError
from radicale_plugin.owner.verification import normalize_key

__all__ = ["AdminError", "LockHolds", "main", "status"]

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
        if args.command == "migrate-to-postgres":
            if args.check:
                return migrate.check(configuration, settings, args.dsn)
            migrate.migrate(configuration, settings, args.dsn)
            return 0
        deployment = Deployment(configuration, settings)
        try:
            return _on(deployment, args)
        finally:
            deployment.close()
    except (SharingError, SchemaError, PostgresSchemaError, backup.BackupError, RuntimeError,
            OSError, sqlite3.Error, psycopg.Error, PoolTimeout) as e:
        print("python -m radicale_plugin: %s" % " ".join(str(e).split()), file=sys.stderr)
        return 1


def _on(deployment: Deployment, args: argparse.Namespace) -> int:
    """Run a command on the deployment of the config (files or PostgreSQL)."""
    exists = deployment.exists()
    if args.command == "schema":
        # only looks: opening the index would migrate it
        if not exists:
            raise deployment.no_database()
        for line in deployment.schema_lines():
            print(line)
        return 0
    if args.command == "check":
        return _check(deployment, missing=not exists)
    if not exists and args.command not in _CREATE:
        raise deployment.no_database()
    # the version as found: opening the index migrates it
    found = deployment.index_version() if args.command == "status" else 0
    # an export is read and checked before a database is opened (or made) for it
    export = backup.read_export(_read_json(args.file), deployment.settings.region) \
        if args.command == "import" else None
    # a server would go on with what it holds in memory, and write meanwhile
    alone = deployment.alone("an import") if export is not None \
        else contextlib.nullcontext()
    with alone, deployment.made_for(created=not exists):
        service = deployment.service()
        try:
            if args.command == "status":
                _status(service, deployment, found, args.json)
            elif export is not None:
                counts = backup.restore(service.index, export)
                print("imported into %s: %s" % (deployment.where, ", ".join(
                    "%d %s" % (n, what) for what, n in counts.items())))
            else:
                _run(service, args, rows=deployment.postgres)
        finally:
            service.index.close()
    return 0


def _run(service: SharingService, args: argparse.Namespace, rows: bool = False) -> None:
    """The commands that work on an opened service."""
    index, ctx = service.index, service.ctx
    if args.command == "rebuild-index":
        holds = LockHolds(service.storage)
        read = service.card_keys.rebuild(service.deliverer.files,
                                         hold=lambda book: holds("r", book))
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
        # on PostgreSQL the collections go with the sharing state, in one transaction
        done = accounts.delete_user(ctx, args.user, args.withdraw, collections=rows)
        print("sharing state of %s deleted: %d link(s), %d offer(s), %d delivery(ies), "
              "%d key(s), %d history entry(ies)" % (args.user, done.links, done.offers,
                                                    done.deliveries, done.keys, done.history))
        if rows:
            print("%d collection(s) of %s deleted with %d item(s)"
                  % (done.collections, args.user, done.items))
        if done.targeted_by:
            print("removed from the targets of %s" % ", ".join(done.targeted_by))
        if done.withdrawing:
            print("%d withdrawal(s) queued (%s): the server's worker makes them at its next "
                  "poll; run delete-user %s again afterwards to drop what they need"
                  % (len(done.withdrawing), ", ".join(done.withdrawing), args.user))
    elif args.command == "export-user":
        print(json.dumps(accounts.export_user(ctx, args.user), indent=1, ensure_ascii=False))


# -- status --------------------------------------------------------------------------------

def status(index: idx.SharingIndex, database: str, found_version: int,
           current: int | None = None) -> dict[str, Any]:
    """What a monitoring system wants to know, as one JSON object (``current``: the schema
    version this code writes, when not SQLite's: PostgreSQL numbers its own)."""
    now = time.time()
    counts = index.outbox.counts(now)
    pending = counts.states.get(idx.PENDING, 0)
    withdrawing = counts.states.get(idx.WITHDRAWING, 0)
    return {"database": database, "schema_version": found_version,
            "schema_current": index.SCHEMA_VERSION if current is None else current,
            "queue": counts.jobs + pending + withdrawing, "jobs": counts.jobs,
            "oldest_job": counts.oldest_job, "pending": pending, "withdrawing": withdrawing,
            "due": counts.due, "failed": counts.states.get(idx.FAILED, 0),
            "deliveries": counts.states, "subscriptions": index.push.count(now)}


def _status(service: SharingService, deployment: Deployment, found: int,
            as_json: bool) -> None:
    report = status(service.index, deployment.where, found, deployment.index_current())
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

def _check(deployment: Deployment, missing: bool) -> int:
    store = deployment.storage()
    settings = deployment.settings
    # a missing database is not created: an empty stand-in in memory takes its place
    index = SQLiteIndex(":memory:", settings.region) if missing \
        else open_index(store, settings)
    files = copy_writer(store)
    holds = LockHolds(store)
    try:
        # each book is compared with its index under the lock (a snapshot on
        # PostgreSQL), one at a time
        problems = recovery.check(store, files, index,
                                  Context(store, settings, index).region_of,
                                  deployment.where, missing, lock=holds)
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
