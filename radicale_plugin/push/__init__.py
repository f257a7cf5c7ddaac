# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push for address books: subscriptions (:mod:`.service`), the DAV forms
(:mod:`.dav`), the allow-list of push services (:mod:`.hosts`, pure), the outbound
HTTP (:mod:`.http`), VAPID keys (:mod:`.keys`) and the sender thread (:mod:`.sender`)
with its queue (:mod:`.queue`), lanes (:mod:`.lanes`), retry policy (:mod:`.retry`),
messages (:mod:`.message`), sync-tokens (:mod:`.sync_tokens`) and
``Push-Dont-Notify`` (:mod:`.dont_notify`).

May import the base and the index; nothing of the sharing parts.
"""
