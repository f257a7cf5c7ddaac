# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's commands, one module each.

Each command module has ``register(command, common)``, which adds its
sub-parser(s) through ``command`` (see :data:`AddCommand`) with the
global options ``common`` as parent and names the function that runs it
(``set_defaults(run=...)``), and that function: ``cmd_x(args, server, out)
-> int``.  A command prints its result with :mod:`bridge.output` and raises
the errors of :mod:`bridge.errors`; it never prints an error or picks an
exit code itself (:func:`bridge.errors.handled` does).

``selection``, ``pick`` and ``me`` are not commands but the parts ``select``
and ``update`` share.  Commands may import :mod:`bridge.client`,
:mod:`bridge.errors`, :mod:`bridge.output`, :mod:`bridge.region`,
:mod:`bridge.select`, :mod:`bridge.readers` and those shared parts; never
:mod:`bridge.cli`.
"""

from __future__ import annotations

import argparse
from typing import Callable

#: ``command(name, help, parents, description=None)``: a new sub-parser of the bridge
AddCommand = Callable[..., argparse.ArgumentParser]
