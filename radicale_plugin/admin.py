# SPDX-License-Identifier: GPL-3.0-or-later
"""The admin command: ``python -m radicale_plugin --config FILE COMMAND``.

    verify-key USER KEY     verify a number or e-mail for USER (as a code would)
    unverify-key USER KEY   end USER's verification of KEY
    keys USER               USER's keys and their states
    rebuild-index           read every address book into the card-key index again
    schema                  the sharing database's schema version (changes nothing)

It works on the same files as the server, and may run while the server
runs (the database serialises writers); the server's fan-out picks up
what it queues at its next poll (``mecard_poll_interval``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from radicale import config
from radicale.storage import multifilesystem

from radicale_plugin.errors import SharingError
from radicale_plugin.service import SharingService
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings
from radicale_plugin.sqlite import SQLiteIndex
from radicale_plugin.sqlite.database import Database
from radicale_plugin.sqlite.schema import SchemaError, version_of
from radicale_plugin.verification import normalize_key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m radicale_plugin",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config", required=True, help="the server's Radicale config file")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("verify-key", "unverify-key"):
        p = sub.add_parser(name)
        p.add_argument("user")
        p.add_argument("key", help="a phone number or e-mail (tel:+..., mailto:... or as written)")
    sub.add_parser("keys").add_argument("user")
    sub.add_parser("rebuild-index")
    sub.add_parser("schema")
    return parser


def _service(path: str) -> SharingService:
    configuration = config.load([(path, False)]).copy(PLUGIN_CONFIG_SCHEMA)
    settings = Settings.from_configuration(configuration)
    # plain file storage: no hooks and no worker in this process
    store = multifilesystem.Storage(configuration)
    return SharingService(store, settings, SQLiteIndex(settings.database, settings.region),
                          configuration)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; 0 on success, 1 with one line of advice otherwise."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "schema":
            # only looks: opening the index would migrate it
            settings = Settings.from_configuration(
                config.load([(args.config, False)]).copy(PLUGIN_CONFIG_SCHEMA))
            if not os.path.exists(settings.database):
                raise RuntimeError("no sharing database at %s (the server makes it at its "
                                   "first start)" % settings.database)
            print("schema version %d (this code writes %d)"
                  % (version_of(Database(settings.database)), SQLiteIndex.SCHEMA_VERSION))
            return 0
        service = _service(args.config)
        if args.command == "rebuild-index":
            with service.storage.acquire_lock("w"):
                read = service.card_keys.rebuild(service.deliverer.files)
            print("card-key index rebuilt from %d address book(s)" % read)
        elif args.command == "keys":
            print(json.dumps(service.verification.keys_of(args.user), indent=1))
        else:
            key = normalize_key(args.key, service.settings.region)
            if args.command == "verify-key":
                previous = service.verification.mark_verified(args.user, key)
                print("%s verified for %s%s" % (key, args.user, " (it moved from %s)" % previous
                                                 if previous else ""))
            else:
                service.index.keys.unverify(args.user, key)
                service.owners.refresh_keys(args.user)
                print("%s is no longer verified for %s" % (key, args.user))
    except (SharingError, SchemaError, RuntimeError, OSError) as e:
        print("python -m radicale_plugin: %s" % e, file=sys.stderr)
        return 1
    return 0
