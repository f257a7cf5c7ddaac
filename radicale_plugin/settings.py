# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin's options, declared in Radicale's ``[storage]`` section.

Radicale lets a storage plugin add options to its section with a
``PLUGIN_CONFIG_SCHEMA`` (see ``radicale.config.Configuration.copy``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import phonenumbers
from radicale import config

from radicale_plugin.index import POLICIES


def _policy(value: str) -> str:
    if value not in POLICIES:
        raise ValueError("must be one of %s, not %r" % (", ".join(POLICIES), value))
    return value


def _region(value: str) -> str:
    value = value.strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("%r is not a region code such as US, DE or FR" % value)
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be 1 or more, not %d" % number)
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


PLUGIN_CONFIG_SCHEMA = {"storage": {
    "mecard_database": {
        "value": "",
        "help": "SQLite file of the sharing index and fan-out queue "
                "(default: .mecard.sqlite in filesystem_folder)",
        "type": str},
    "mecard_default_policy": {
        "value": "auto",
        "help": "what a recipient's book accepts from an owner the recipient set "
                "no policy for: auto (apply updates) or block",
        "type": _policy},
    "mecard_default_region": {
        "value": "US",
        "help": "region for phone numbers written without a country code",
        "type": _region},
    "mecard_batch_size": {
        "value": "20",
        "help": "recipients written per hold of the storage lock",
        "type": _positive_int},
    "mecard_batch_pause": {
        "value": "0.02",
        "help": "seconds the fan-out leaves the lock free between batches",
        "type": _seconds},
    "mecard_poll_interval": {
        "value": "30",
        "help": "seconds between checks for queued work nobody woke the worker for",
        "type": _seconds},
}}


@dataclass(frozen=True)
class Settings:
    """The plugin's options, read once."""

    database: str
    default_policy: str
    region: str
    batch_size: int
    batch_pause: float
    poll_interval: float

    @classmethod
    def from_configuration(cls, configuration: config.Configuration) -> "Settings":
        folder = os.path.expanduser(configuration.get("storage", "filesystem_folder"))
        database = configuration.get("storage", "mecard_database") or os.path.join(
            folder, ".mecard.sqlite")
        return cls(
            database=os.path.abspath(os.path.expanduser(database)),
            default_policy=configuration.get("storage", "mecard_default_policy"),
            region=configuration.get("storage", "mecard_default_region"),
            batch_size=configuration.get("storage", "mecard_batch_size"),
            batch_pause=configuration.get("storage", "mecard_batch_pause"),
            poll_interval=configuration.get("storage", "mecard_poll_interval"))
