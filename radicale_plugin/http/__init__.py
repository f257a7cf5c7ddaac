# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP face: the WSGI layer (:mod:`.wsgi`), the server launcher (:mod:`.serve`),
Radicale's web plugin (:mod:`.web`), the JSON API (:mod:`.api`) and the refusals
carried into Radicale's answers (:mod:`.refusals`).

The top of the house: may import every part; calls the service, never the index's
backend directly.
"""
