# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge: choose recipients of your card in bulk, from your own computer.

The parts, lowest first (a module imports only parts above it in this list):

* ``errors``: the errors commands raise, their exit codes, and :func:`~bridge.errors.handled`,
  the one place that prints an error's line of advice and returns its code;
* ``output``: text for people or one JSON document (``--json``);
* ``readers/``: call and message logs, iPhone backups (files in, events out);
* ``region``, ``select``: which region national numbers are read in, and the
  selectors (pure, but for the locale);
* ``client``: the server (CardDAV and the sharing API); ``settings``: where it is,
  who the user is, the password;
* ``commands/``: one module per command (and ``selection``, ``pick``, ``me``,
  which ``select`` and ``update`` share);
* ``cli``: the command line and the dispatch, ``main(argv) -> int``.
"""
