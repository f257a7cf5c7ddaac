# SPDX-License-Identifier: GPL-3.0-or-later
"""Links follow the recipient's own hands: a copy moved or deleted by the recipient.

A link stays when the recipient deletes the card it leads to (it then
dangles): the owner learns the copy is gone, and the fan-out does not
simply create it again.  Only the recipient's next choice of policy for
that owner re-opens the way (see :mod:`radicale_plugin.policies`).
Callers hold the storage write lock.
"""

from __future__ import annotations

from radicale_plugin import index as idx
from radicale_plugin import store
from radicale_plugin.context import Context


class Links:
    """Keeping links right when recipients move or delete copies."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def on_deleted(self, path: str) -> None:
        """Owners whose copy was at ``path`` (a card, a book or a user) learn it is gone."""
        index = self._ctx.index
        for link in index.links.under(path):
            delivery = index.outbox.delivery(link.owner, link.recipient)
            if delivery is not None and delivery.state == idx.DELIVERED:
                delivery.state = idx.FAILED
                delivery.error = "the recipient removed your card from their address book"
                index.outbox.finish(delivery)

    def on_moved(self, book: str, href: str, to_book: str, to_href: str) -> None:
        """A copy moved within the recipient's books is followed; moved elsewhere, it is gone."""
        replaced = self._ctx.index.links.at(to_book, to_href)
        if replaced is not None and (to_book, to_href) != (book, href):
            self.on_deleted("%s/%s" % (to_book, to_href))  # that copy was overwritten
            self._ctx.index.links.remove(replaced.owner, replaced.recipient)
        link = self._ctx.index.links.at(book, href)
        if link is None:
            return
        if store.user_of(to_book) == link.recipient:
            self._ctx.index.links.move(book, href, to_book, to_href)
        else:
            self.on_deleted("%s/%s" % (book, href))

    def forget_deleted(self, recipient: str, owner: str | None) -> None:
        """Drop links of ``recipient`` (to ``owner``, or any) whose card the recipient deleted."""
        index = self._ctx.index
        for link in index.links.under(recipient):
            if owner in (None, link.owner) and link.recipient == recipient \
                    and index.cards.card(link.book, link.href) is None:
                index.links.remove(link.owner, recipient)
