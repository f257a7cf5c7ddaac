# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the server is and who the user is: the command line, the environment, the config file.

Settings come from ``--url``/``--user`` (and ``--region``, ``--ca-bundle``),
else ``MECARD_URL``/``MECARD_USER``, else section ``[server]`` of the config
file; the password from ``MECARD_PASSWORD``, ``~/.netrc`` or a prompt.
"""

from __future__ import annotations

import argparse
import configparser
import getpass
import netrc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.client import check_url
from bridge.errors import ServerUnusable, UserError


def default_config() -> Path:
    """``$XDG_CONFIG_HOME/mecard/bridge.ini``, else ``~/.config/mecard/bridge.ini``."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    # the XDG spec ignores a relative path: it would depend on the current folder
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "mecard" / "bridge.ini"



@dataclass
class Settings:
    """Where the server is, who the user is, and a region the user named (if any)."""

    url: str
    user: str
    region: tuple[str, str] | None  # (code, where it was given)
    ca_bundle: str | None = None  # the PEM file of a private CA


def settings_of(args: argparse.Namespace) -> Settings:
    """URL, user and region from the command line, the environment and the config file."""
    path = args.config or default_config()
    config = configparser.ConfigParser()
    if args.config is not None and not path.expanduser().is_file():
        raise UserError("--config %s: no such file" % path)
    try:
        config.read(path.expanduser(), encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise UserError("%s is not a config file the bridge can read (%s): it needs a "
                        "section [server] with url=, user= and region=" %
                        (path, str(e).splitlines()[0])) from e
    section: Any = config["server"] if config.has_section("server") else {}
    url = args.url or os.environ.get("MECARD_URL") or section.get("url")
    user = args.user or os.environ.get("MECARD_USER") or section.get("user")
    if not url:
        raise ServerUnusable("no server: give --url, set MECARD_URL or url= in %s" % path)
    if not user:
        raise ServerUnusable("no user: give --user, set MECARD_USER or user= in %s" % path)
    region = None
    if args.region:
        region = (args.region, "--region")
    elif section.get("region"):
        region = (section.get("region"), "region= in %s" % path)
    ca_bundle = args.ca_bundle or section.get("ca_bundle")
    return Settings(check_url(url), user, region,
                    os.path.expanduser(ca_bundle) if ca_bundle else None)


def password(url: str, user: str) -> str:
    """The password: MECARD_PASSWORD, ~/.netrc, or a prompt in a terminal."""
    if os.environ.get("MECARD_PASSWORD"):
        return os.environ["MECARD_PASSWORD"]
    try:
        auth = netrc.netrc().authenticators(urlsplit(url).hostname or "")
        if auth and (auth[0] in (user, None, "")) and auth[2]:
            return auth[2]
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    if sys.stdin.isatty():
        return getpass.getpass("Password for %s at %s: " % (user, url))
    raise ServerUnusable("no password: set MECARD_PASSWORD, add the server to ~/.netrc, "
                         "or run in a terminal to be asked")
