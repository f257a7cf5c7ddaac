# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin's options as read once (:class:`Settings`).

The options themselves, declared in Radicale's ``[storage]`` section with their
defaults and validators, are :mod:`radicale_plugin.config_schema`
(``PLUGIN_CONFIG_SCHEMA``, importable from here too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from radicale import config

from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.config_schema import PLUGIN_CONFIG_SCHEMA
from radicale_plugin.consent.decisions import Preauthorization
from radicale_plugin.vcard.limits import Limits

__all__ = ["PLUGIN_CONFIG_SCHEMA", "Settings"]


def _server_url(configuration: config.Configuration) -> str:
    """The first address the server listens on, as a URL (``[server] hosts`` and ``ssl``)."""
    try:
        host, port = configuration.get("server", "hosts")[0]
        scheme = "https" if configuration.get("server", "ssl") else "http"
    except (IndexError, KeyError, ValueError, TypeError):
        return "http://localhost:5232"
    host = {"0.0.0.0": "localhost", "::": "localhost", "": "localhost"}.get(host, host)
    return "%s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host, port)


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
    claim_lease: float = 60.0
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
    #: the address the server listens on (links in e-mails when nothing better is known)
    server_url: str = "http://localhost:5232"
    notify_email: bool = True
    notify_digest_minutes: float = 60
    notify_settle: float = 120
    notify_unsubscribe_days: float = 60
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
    history_days: float = 365   # how long the history of changes to recipients' cards is kept

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
            claim_lease=get("claim_lease"),
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
            server_url=_server_url(configuration),
            notify_email=get("notify_email"),
            notify_digest_minutes=get("notify_digest_minutes"),
            notify_settle=get("notify_settle"),
            notify_unsubscribe_days=get("notify_unsubscribe_days"),
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
            retry_attempts=get("retry_attempts"),
            history_days=get("history_days"))
