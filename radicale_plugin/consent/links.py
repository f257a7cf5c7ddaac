# SPDX-License-Identifier: GPL-3.0-or-later
"""Links belong to cards: they follow the recipient's own hands, and end with the card.

A link leads to one card of the recipient, known by its href and its UID
(``Link.uid``).  It follows the card when the recipient moves it within
their own books to a card that is not their me card.  It ends when that
card is gone: deleted, moved out of the recipient's books, overwritten by a
MOVE, replaced at its href by another card, or given another UID.  The owner
then sees that the recipient removed the copy, and their next change makes
an offer or a new card as the recipient's policy says: never a write into
whatever sits at that href now.  Callers of the hooks hold the storage write
lock.
"""

from __future__ import annotations

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.index import Link, SharingIndex

#: What the owner reads when the card holding their copy is gone.
REMOVED = "the recipient removed your card from their address book"


def holds(link: Link, uid: str | None) -> bool:
    """Whether the card with this UID, found at the link's href, is still the linked card."""
    return not link.uid or link.uid == (uid or "")


def end(index: SharingIndex, link: Link, tell_owner: bool = True) -> None:
    """The linked card is gone: the link ends, with an offer that named that card.

    ``tell_owner``: the owner's delivery says the recipient removed the copy
    (the fan-out, deciding that delivery itself, says so on its own).
    """
    with index.transaction():
        index.links.remove(link.owner, link.recipient)
        offer = index.consent.offer(link.owner, link.recipient)
        if offer is not None and (offer.book, offer.href) == (link.book, link.href):
            index.consent.drop_offer(link.owner, link.recipient)
        delivery = index.outbox.delivery(link.owner, link.recipient)
        if tell_owner and delivery is not None and delivery.state in (idx.DELIVERED,
                                                                       idx.OFFERED):
            delivery.state, delivery.error = idx.FAILED, REMOVED
            index.outbox.finish(delivery)
    logger.info("Copy of %r's card in /%s/%s is gone: the link to %r ends", link.owner,
                link.book, link.href, link.recipient)


class Links:
    """Keeping links on their cards when recipients write, move or delete them."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _me_card(self, user: str) -> tuple[str | None, str | None]:
        owner = self._ctx.index.owners.get(user)
        return owner.book, owner.href

    def on_deleted(self, path: str) -> None:
        """Links of the cards at ``path`` (a card, a book or a user) end."""
        for link in self._ctx.index.links.under(path):
            end(self._ctx.index, link)

    def on_written(self, book: str, href: str, uid: str | None, before_uid: str | None) -> None:
        """A card was written at ``book/href`` through Radicale: if another card now sits
        where a linked card was (a new card at a deleted copy's href, a changed UID), the
        link ends.  ``before_uid``: the UID the index knew there (None: no card)."""
        link = self._ctx.index.links.at(book, href)
        if link is None:
            return
        expected = link.uid or before_uid
        if not expected or expected != (uid or ""):
            end(self._ctx.index, link)

    def on_moved(self, book: str, href: str, to_book: str, to_href: str) -> None:
        """A copy moved within the recipient's books to a card that is not their me card is
        followed; anywhere else its link ends, as does the link of a card it overwrote."""
        index = self._ctx.index
        replaced = index.links.at(to_book, to_href)
        if replaced is not None and (to_book, to_href) != (book, href):
            end(index, replaced)  # that copy was overwritten
        link = index.links.at(book, href)
        if link is None:
            return
        if store.user_of(to_book) == link.recipient \
                and self._me_card(link.recipient) != (to_book, to_href):
            index.links.move(book, href, to_book, to_href)
        else:
            end(index, link)

    def uids_before(self, book: str) -> dict[str, str]:
        """The UIDs the index knows of the linked cards of ``book`` (before it is rewritten)."""
        index = self._ctx.index
        out = {}
        for link in index.links.under(book):
            card = index.cards.card(link.book, link.href)
            if card is not None:
                out[link.href] = card.uid
        return out

    def on_replaced(self, book: str, before: dict[str, str]) -> None:
        """A whole book was written (the card-key index already reads it anew): each link
        follows its card by UID, or ends.  ``before``: :meth:`uids_before`."""
        index = self._ctx.index
        for link in index.links.under(book):
            self._follow(link, link.uid or before.get(link.href, ""))

    def _follow(self, link: Link, uid: str) -> None:
        """Keep a link on its card: where it is, at the href the card with its UID has now
        in the same book, or nowhere."""
        index = self._ctx.index
        card = index.cards.card(link.book, link.href)
        if card is not None and (not uid or card.uid == uid):
            return  # (a link of unknown UID is left on the card at its href)
        href = index.cards.href_of_uid(link.book, uid) if uid else None
        if href is not None and index.links.at(link.book, href) is None \
                and self._me_card(link.recipient) != (link.book, href):
            index.links.move(link.book, link.href, link.book, href)
        else:
            end(index, link)

    def reconcile(self) -> int:
        """At start, after the card-key index read the books changed while the server was
        stopped: links whose card was deleted or replaced meanwhile follow it or end.

        Holds Radicale's lock shared, so that no request makes a link to a card the index
        does not know yet; it costs one query and a few writes.  Returns the links looked at.
        """
        with self._ctx.storage.acquire_lock("r"):
            astray = self._ctx.index.links.astray()
            for link in astray:
                self._follow(link, link.uid)
        if astray:
            logger.info("Sharing: %d link(s) whose card changed while the server was stopped "
                        "followed their card or ended", len(astray))
        return len(astray)

    def forget_deleted(self, recipient: str, owner: str | None) -> None:
        """Drop links of ``recipient`` (to ``owner``, or any) whose card the recipient deleted."""
        index = self._ctx.index
        for link in index.links.under(recipient):
            if owner in (None, link.owner) and link.recipient == recipient \
                    and index.cards.card(link.book, link.href) is None:
                index.links.remove(link.owner, recipient)
