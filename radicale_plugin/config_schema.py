# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin's option schema: ``PLUGIN_CONFIG_SCHEMA``, the options it declares in
Radicale's ``[storage]`` section, with their defaults, help and validators.

Radicale lets a storage plugin add options to its section with a
``PLUGIN_CONFIG_SCHEMA`` (see ``radicale.config.Configuration.copy``).
Validators are small functions raising ``ValueError``; Radicale reports the
option and section.  The values read are :class:`radicale_plugin.settings.Settings`.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

import phonenumbers

from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.consent.decisions import Preauthorization
from radicale_plugin.index import DISCOVERABILITY, POLICIES


def _choice(*choices: str):
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError("must be one of %s, not %r" % (", ".join(choices), value))
        return value
    return check


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


def _positive_seconds(value: str) -> float:
    number = float(value)
    if not 0 < number < float("inf"):  # also refuses nan
        raise ValueError("must be more than 0 seconds (and finite)")
    return number


def _days(value: str) -> float:
    number = float(value)
    if not 0 <= number < float("inf"):  # also refuses nan
        raise ValueError("must be 0 (for ever) or more days, not %r" % value)
    return number


def _window(value: str) -> float:
    number = _positive_seconds(value)
    if number > 604800:
        raise ValueError("must be at most 604800 seconds (a week)")
    return number


def _preauthorization(value: str) -> str:
    Preauthorization.parse(value)
    return value


def _push_services(value: str) -> str:
    for entry in value.split():
        push_hosts.parse_entry(entry)
    return value


def _push_contact(value: str) -> str:
    if value and not value.startswith(("mailto:", "https://")):
        raise ValueError("must be a mailto: or https:// address, not %r" % value)
    return value


def _public_url(value: str) -> str:
    """The server's address as people reach it (links handed out, e.g. invites), or empty."""
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or "@" in parts.netloc:
        raise ValueError("must be an http:// or https:// address such as "
                         "https://contacts.example.org/dav, not %r" % value)
    return value


def _command(value: str) -> str:
    if value.strip():
        shlex.split(value)
    return value


PLUGIN_CONFIG_SCHEMA = {"storage": {
    "postgresql_dsn": {
        "value": "",
        "help": "PostgreSQL connection string (libpq, e.g. host=db dbname=radicale "
                "user=radicale) of the storage type radicale_plugin.storage.postgres (or .plain)",
        "type": str},
    "mecard_database": {
        "value": "",
        "help": "SQLite file of the sharing index and fan-out queue "
                "(default: .mecard.sqlite in filesystem_folder)",
        "type": str},
    "mecard_default_policy": {
        "value": "ask",
        "help": "what a recipient accepts from an owner when neither of them set a policy: "
                "auto (apply updates), ask (make an offer) or block",
        "type": _choice(*POLICIES)},
    "mecard_preauthorize": {
        "value": "",
        "help": "users between whom updates are applied without asking, unless a recipient "
                "set a policy: group:NAME, ... (Radicale's [group] backend) or * (everyone: "
                "then any user may create a card in any other user's book; prefer a group)",
        "type": _preauthorization},
    "mecard_default_discoverability": {
        "value": "contacts",
        "help": "who may learn that a user's number or e-mail belongs to a user here, "
                "until the user chooses: everyone, contacts or nobody",
        "type": _choice(*DISCOVERABILITY)},
    "mecard_default_region": {
        "value": "US",
        "help": "region for phone numbers written without a country code",
        "type": _region},
    "mecard_batch_size": {
        "value": "200",
        "help": "recipients the fan-out prepares per round (their files are written outside "
                "the storage lock)",
        "type": _positive_int},
    "mecard_batch_pause": {
        "value": "0",
        "help": "seconds the fan-out rests between rounds (0: none; more leaves more of the "
                "machine to requests)",
        "type": _seconds},
    "mecard_lock_hold": {
        "value": "0.01",
        "help": "longest time, in seconds, the fan-out holds the storage lock at once (it only "
                "renames prepared files under it)",
        "type": _seconds},
    "mecard_lock_gap": {
        "value": "0.005",
        "help": "seconds the fan-out leaves the storage lock to requests between two holds",
        "type": _seconds},
    "mecard_rewrite_spacing": {
        "value": "10",
        "help": "an owner's copy written less than this many seconds ago waits until then "
                "before the owner's next change is written into it (bursts of edits)",
        "type": _seconds},
    "mecard_poll_interval": {
        "value": "30",
        "help": "seconds between checks for queued work nobody woke the worker for",
        "type": _seconds},
    "mecard_claim_lease": {
        "value": "60",
        "help": "seconds a process's claim on deliveries, or on a background duty, lasts "
                "unrenewed: how long the work of a process that died waits for the others",
        "type": _positive_seconds},
    "mecard_smtp_host": {
        "value": "",
        "help": "SMTP server that sends e-mail verification codes (empty: no e-mail "
                "verification)",
        "type": str},
    "mecard_smtp_port": {"value": "25", "help": "SMTP port", "type": _positive_int},
    "mecard_smtp_security": {
        "value": "none", "help": "none, starttls or tls",
        "type": _choice("none", "starttls", "tls")},
    "mecard_smtp_username": {"value": "", "help": "SMTP login (empty: none)", "type": str},
    "mecard_smtp_password": {"value": "", "help": "SMTP password", "type": str},
    "mecard_smtp_from": {
        "value": "radicale-mecard@localhost", "help": "sender of verification e-mails",
        "type": str},
    "mecard_sms_command": {
        "value": "",
        "help": "program that sends a text message, called as PROGRAM NUMBER TEXT without a "
                "shell (empty: no phone verification except by the admin command)",
        "type": _command},
    "mecard_server_name": {
        "value": "radicale-mecard",
        "help": "how verification messages name this server", "type": str},
    "mecard_code_lifetime": {
        "value": "900", "help": "seconds a verification code stays valid", "type": _seconds},
    "mecard_code_attempts": {
        "value": "5", "help": "wrong codes accepted before a code is void",
        "type": _positive_int},
    "mecard_codes_per_user": {
        "value": "10", "help": "verification codes one user may ask for per hour",
        "type": _positive_int},
    "mecard_codes_per_user_key": {
        "value": "3", "help": "verification codes one user may have sent to one number or "
                              "e-mail per hour", "type": _positive_int},
    "mecard_codes_per_key": {
        "value": "10", "help": "verification codes sent to one number or e-mail per hour, "
                              "whoever asks", "type": _positive_int},
    "mecard_wrong_codes_per_key": {
        "value": "30",
        "help": "wrong verification codes accepted for one number or e-mail within "
                "mecard_wrong_codes_window, from all accounts together; then nobody can "
                "verify it until the oldest of them is that old, and its holder is told",
        "type": _positive_int},
    "mecard_wrong_codes_window": {
        "value": "86400",
        "help": "seconds over which wrong codes for one number or e-mail are counted "
                "(at most 604800, a week)", "type": _window},
    "mecard_max_card_keys": {
        "value": "20", "help": "most phone numbers and e-mails a me card may carry",
        "type": _positive_int},
    "mecard_new_keys_per_day": {
        "value": "20",
        "help": "phone numbers and e-mails new to a user's me card accepted per day",
        "type": _positive_int},
    "mecard_resolve_max_keys": {
        "value": "10000", "help": "numbers and e-mails one /resolve call may ask about",
        "type": _positive_int},
    "mecard_resolve_per_hour": {
        "value": "20000",
        "help": "numbers and e-mails one user may resolve per hour (also the burst)",
        "type": _positive_int},
    "mecard_offers_per_day": {
        "value": "100", "help": "new offers one owner may make per day",
        "type": _positive_int},
    "mecard_invites_per_day": {
        "value": "20", "help": "invites one owner may create per day",
        "type": _positive_int},
    "mecard_invite_opens_per_hour": {
        "value": "30",
        "help": "invite links one user may open or accept per hour (also the burst)",
        "type": _positive_int},
    "mecard_public_url": {
        "value": "",
        "help": "the server's address as people reach it, for the links it hands out "
                "(invites), e.g. https://contacts.example.org/dav; empty: the address the "
                "owner's own request named (its Host header)",
        "type": _public_url},
    "mecard_notify_email": {
        "value": "True",
        "help": "notifications: e-mail recipients (through mecard_smtp_*) when an offer waits "
                "for them, as each chose (default: offers, to their first verified e-mail); "
                "False: the pages only", "type": bool},
    "mecard_notify_digest_minutes": {
        "value": "60",
        "help": "notifications: at most one e-mail per this many minutes to one recipient "
                "(what comes meanwhile waits for the next)", "type": _seconds},
    "mecard_notify_settle": {
        "value": "120",
        "help": "notifications: seconds without a new event before an e-mail goes (an owner "
                "editing five times in a minute makes one e-mail; at most 15 minutes' wait)",
        "type": _seconds},
    "mecard_notify_unsubscribe_days": {
        "value": "60",
        "help": "notifications: days the one-click unsubscribe link of an e-mail works",
        "type": _positive_seconds},
    "mecard_max_body": {
        "value": "1048576", "help": "largest API request body, in bytes",
        "type": _positive_int},
    "mecard_max_properties": {
        "value": "500", "help": "most properties a me card may have",
        "type": _positive_int},
    "mecard_max_photo": {
        "value": "1048576", "help": "largest photo (or other inline binary) of a me card, "
                                    "in decoded bytes", "type": _positive_int},
    "mecard_allowed_origins": {
        "value": "",
        "help": "web origins besides this server's own allowed to change settings through "
                "the API (space-separated, e.g. https://contacts.example.org)",
        "type": str},
    "mecard_push_services": {
        "value": " ".join(push_hosts.DEFAULT_SERVICES),
        "help": "WebDAV-Push: the push services this server may send to (space-separated host "
                "names, *.domain for its subdomains, host:port for another port than 443); "
                "empty: no push",
        "type": _push_services},
    "mecard_push_vapid_key": {
        "value": "",
        "help": "WebDAV-Push: PEM file of the server's VAPID key pair, made at the first start "
                "(default: .mecard-vapid.pem beside the sharing database)",
        "type": str},
    "mecard_push_contact": {
        "value": "",
        "help": "WebDAV-Push: how push services reach the admin, a mailto: or https:// "
                "address (default: mailto: and mecard_smtp_from)",
        "type": _push_contact},
    "mecard_push_per_user": {
        "value": "20", "help": "WebDAV-Push: subscriptions one user may have at once",
        "type": _positive_int},
    "mecard_push_per_book": {
        "value": "10", "help": "WebDAV-Push: subscriptions to one address book at once",
        "type": _positive_int},
    "mecard_push_max_expiry": {
        "value": "604800",
        "help": "WebDAV-Push: longest time, in seconds, a subscription is granted before the "
                "client must renew it", "type": _seconds},
    "mecard_push_coalesce": {
        "value": "0.5",
        "help": "WebDAV-Push: at most one message per address book within this many seconds",
        "type": _seconds},
    "mecard_push_timeout": {
        "value": "10",
        "help": "WebDAV-Push: seconds one attempt to reach a push service may take in all",
        "type": _seconds},
    "mecard_push_allow_insecure_loopback": {
        "value": "False",
        "help": "WebDAV-Push, for tests only: allow push services at loopback addresses, "
                "over http", "type": bool},
    "mecard_retry_base": {
        "value": "60",
        "help": "seconds before the first retry of a delivery that failed for a passing reason "
                "(an I/O error, an address book that cannot be read for now); each next wait "
                "doubles", "type": _positive_seconds},
    "mecard_retry_max": {
        "value": "3600",
        "help": "longest wait, in seconds, between two retries of a delivery",
        "type": _positive_seconds},
    "mecard_retry_attempts": {
        "value": "10",
        "help": "attempts at a delivery that keeps failing for a passing reason before it is "
                "marked failed (tried again at the owner's next change)",
        "type": _positive_int},
    "mecard_history_days": {
        "value": "365",
        "help": "days the history of changes made to recipients' cards (and what they may "
                "undo) is kept; 0 keeps it for ever",
        "type": _days},
}}
