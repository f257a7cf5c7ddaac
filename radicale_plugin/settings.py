# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin's options, declared in Radicale's ``[storage]`` section.

Radicale lets a storage plugin add options to its section with a
``PLUGIN_CONFIG_SCHEMA`` (see ``radicale.config.Configuration.copy``).
Validators are small functions raising ``ValueError``; Radicale reports the
option and section.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

import phonenumbers
from radicale import config

from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.consent.decisions import Preauthorization
from radicale_plugin.index import DISCOVERABILITY, POLICIES
from radicale_plugin.vcard.limits import Limits


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
}}


@dataclass(frozen=True)
class Settings:
    """The plugin's options, read once."""

    database: str
    default_policy: str = "ask"
    preauthorize: Preauthorization = Preauthorization()
    default_discoverability: str = "contacts"
    region: str = "US"
    batch_size: int = 200
    batch_pause: float = 0.0
    lock_hold: float = 0.01
    lock_gap: float = 0.005
    rewrite_spacing: float = 10.0
    poll_interval: float = 30
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "radicale-mecard@localhost"
    sms_command: str = ""
    server_name: str = "radicale-mecard"
    code_lifetime: float = 900
    code_attempts: int = 5
    codes_per_user: int = 10
    codes_per_user_key: int = 3
    codes_per_key: int = 10
    wrong_codes_per_key: int = 30
    wrong_codes_window: float = 86400
    max_card_keys: int = 20
    new_keys_per_day: int = 20
    resolve_max_keys: int = 10000
    resolve_per_hour: int = 20000
    offers_per_day: int = 100
    invites_per_day: int = 20
    invite_opens_per_hour: int = 30
    public_url: str = ""
    max_body: int = 1048576
    limits: Limits = Limits()
    allowed_origins: tuple[str, ...] = ()
    push_services: tuple[str, ...] = push_hosts.DEFAULT_SERVICES
    push_vapid_key: str = ""
    push_contact: str = "mailto:radicale-mecard@localhost"
    push_per_user: int = 20
    push_per_book: int = 10
    push_max_expiry: float = 604800
    push_coalesce: float = 0.5
    push_timeout: float = 10
    push_allow_insecure_loopback: bool = False
    retry_base: float = 60
    retry_max: float = 3600
    retry_attempts: int = 10

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th transient failure in a row (1, 2, ...):
        ``retry_base`` doubling with each, at most ``retry_max``."""
        return min(self.retry_max, self.retry_base * 2.0 ** min(max(attempts - 1, 0), 60))

    @classmethod
    def from_configuration(cls, configuration: config.Configuration) -> "Settings":
        def get(name: str):
            return configuration.get("storage", "mecard_" + name)

        folder = os.path.expanduser(configuration.get("storage", "filesystem_folder"))
        database = get("database") or os.path.join(folder, ".mecard.sqlite")
        database = os.path.abspath(os.path.expanduser(database))
        vapid_key = get("push_vapid_key") or os.path.join(os.path.dirname(database),
                                                          ".mecard-vapid.pem")
        return cls(
            database=database,
            default_policy=get("default_policy"),
            preauthorize=Preauthorization.parse(get("preauthorize")),
            default_discoverability=get("default_discoverability"),
            region=get("default_region"),
            batch_size=get("batch_size"),
            batch_pause=get("batch_pause"),
            lock_hold=get("lock_hold"),
            lock_gap=get("lock_gap"),
            rewrite_spacing=get("rewrite_spacing"),
            poll_interval=get("poll_interval"),
            smtp_host=get("smtp_host"),
            smtp_port=get("smtp_port"),
            smtp_security=get("smtp_security"),
            smtp_username=get("smtp_username"),
            smtp_password=get("smtp_password"),
            smtp_from=get("smtp_from"),
            sms_command=get("sms_command"),
            server_name=get("server_name"),
            code_lifetime=get("code_lifetime"),
            code_attempts=get("code_attempts"),
            codes_per_user=get("codes_per_user"),
            codes_per_user_key=get("codes_per_user_key"),
            codes_per_key=get("codes_per_key"),
            wrong_codes_per_key=get("wrong_codes_per_key"),
            wrong_codes_window=get("wrong_codes_window"),
            max_card_keys=get("max_card_keys"),
            new_keys_per_day=get("new_keys_per_day"),
            resolve_max_keys=get("resolve_max_keys"),
            resolve_per_hour=get("resolve_per_hour"),
            offers_per_day=get("offers_per_day"),
            invites_per_day=get("invites_per_day"),
            invite_opens_per_hour=get("invite_opens_per_hour"),
            public_url=get("public_url"),
            max_body=get("max_body"),
            limits=Limits(get("max_properties"), get("max_photo")),
            allowed_origins=tuple(get("allowed_origins").split()),
            push_services=tuple(get("push_services").split()),
            push_vapid_key=os.path.abspath(os.path.expanduser(vapid_key)),
            push_contact=get("push_contact") or "mailto:" + get("smtp_from"),
            push_per_user=get("push_per_user"),
            push_per_book=get("push_per_book"),
            push_max_expiry=get("push_max_expiry"),
            push_coalesce=get("push_coalesce"),
            push_timeout=get("push_timeout"),
            push_allow_insecure_loopback=get("push_allow_insecure_loopback"),
            retry_base=get("retry_base"),
            retry_max=get("retry_max"),
            retry_attempts=get("retry_attempts"))
