# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's command line and config files, read as ``radicale`` reads them.

``radicale.__main__.run`` builds its parser inline from Radicale's config
schema: one ``--SECTION-OPTION`` flag per option, and for a section with a
backend (``type``) any other ``--SECTION-...`` passed on to the backend.
:func:`parser` and :func:`parse` build the same, with the plugin's own
``[storage]`` options listed too, for ``python -m radicale_plugin.serve``;
:func:`config_paths` is the order in which config files are chosen
(``--config a.conf:?b.conf``, else ``RADICALE_CONFIG``, else Radicale's
default paths), for the server and the admin command alike.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from radicale import VERSION, config, types

from radicale_plugin import __version__
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA


def config_paths(compound: str | None) -> list[tuple[str, bool]]:
    """The config files to load, ``[(path, optional)]``: ``compound`` (``a:?b``), else
    ``$RADICALE_CONFIG``, else Radicale's default paths (Radicale's own function)."""
    return config.parse_compound_paths(config.DEFAULT_CONFIG_PATH,
                                       os.environ.get("RADICALE_CONFIG"), compound)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """``radicale``'s options, with the plugin's ``[storage]`` options added."""
    made = argparse.ArgumentParser(prog=prog, usage="%(prog)s [OPTIONS]", allow_abbrev=False,
                                   description=description)
    made.add_argument("--version", action="version",
                      version="radicale-mecard %s (Radicale %s)" % (__version__, VERSION))
    made.add_argument("-C", "--config", nargs="*",
                      help="config files, as for radicale: several arguments or PATH:PATH, "
                      "?PATH for an optional file (default: $RADICALE_CONFIG, else "
                      "Radicale's default paths)")
    made.add_argument("-D", "--debug", action="store_const", const="debug",
                      dest="c:logging:level", default=argparse.SUPPRESS,
                      help="print debug information")
    for section, options in config.DEFAULT_CONFIG_SCHEMA.items():
        if section.startswith("_"):
            continue
        description_ = None
        if options.get("_allow_extra"):
            description_ = "additional options allowed"
        elif section in PLUGIN_CONFIG_SCHEMA:
            description_ = "other backends' options omitted; the plugin's are listed"
        elif "type" in options:
            description_ = "backend specific options omitted"
        group = made.add_argument_group(section, description_)
        for option, data in {**options, **PLUGIN_CONFIG_SCHEMA.get(section, {})}.items():
            if not option.startswith("_"):
                _add_option(group, section, option, data)
    return made


def _add_option(group: Any, section: str, option: str, data: dict[str, Any]) -> None:
    kwargs = {k: v for k, v in data.items()
              if k not in ("value", "internal", "type", "aliases", "opposite_aliases")}
    long_name = "--%s-%s" % (section, option.replace("_", "-"))
    kwargs.update(dest="c:%s:%s" % (section, option), metavar="VALUE",
                  default=argparse.SUPPRESS)
    if data["type"] is bool:
        group.add_argument(*data.get("aliases", ()), long_name, nargs="?", const="True",
                           **kwargs)
        kwargs["help"] = "do not %s (opposite of %s)" % (kwargs.get("help", ""), long_name)
        group.add_argument(*data.get("opposite_aliases", ()), "--no%s" % long_name[1:],
                           action="store_const", const="False", **kwargs)
    else:
        group.add_argument(*data.get("aliases", ()), long_name, **kwargs)


def parse(argv: Sequence[str] | None, made: argparse.ArgumentParser
          ) -> tuple[argparse.Namespace, types.MUTABLE_CONFIG]:
    """The arguments, and the config options among them ``{section: {option: value}}``.

    As ``radicale`` does, ``--SECTION-OPTION`` of a section with a backend (``type``)
    is passed on to the backend even when not listed (an auth plugin's own options);
    Radicale's config then refuses what nobody knows.
    """
    args, remaining = made.parse_known_args(argv)
    unknown = []
    while remaining:
        arg = remaining.pop(0)
        for section, data in config.DEFAULT_CONFIG_SCHEMA.items():
            prefix = "--%s-" % section
            if ("type" in data or data.get("_allow_extra")) and arg.startswith(prefix):
                arg = arg[len(prefix):]
                break
        else:
            unknown.append(arg)
            continue
        value = ""
        if "=" in arg:
            arg, value = arg.split("=", maxsplit=1)
        elif remaining and not remaining[0].startswith("-"):
            value = remaining.pop(0)
        option = arg if data.get("_allow_extra") else arg.replace("-", "_")
        vars(args)["c:%s:%s" % (section, option)] = value
    if unknown:
        made.error("unrecognized arguments: %s" % " ".join(unknown))
    options: types.MUTABLE_CONFIG = {}
    for key, value in vars(args).items():
        if key.startswith("c:"):
            _, section, option = key.split(":", maxsplit=2)
            options.setdefault(section, {})[option] = value
    return args, options
