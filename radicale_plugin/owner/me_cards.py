# SPDX-License-Identifier: GPL-3.0-or-later
"""Me cards: which card is whose, what of it is shared, and the owner's choices.

A me card's numbers and e-mails travel as plain values: only keys verified
for the owner ever link or match anything.  What the copies carry never
depends on other users' keys beyond what ``/resolve`` would tell the owner:
the *view* leaves out keys verified for another user the owner may discover,
and keys found on copies of other owners' cards in the owner's own books
(no re-publication of what somebody shared with them) — never a key because
it is verified for somebody hidden, which would make every copy an oracle.
A me card carries at most ``mecard_max_card_keys`` numbers and e-mails, and
at most ``mecard_new_keys_per_day`` new ones a day (every path that writes
or designates one is checked).  Designating a copy of somebody else's card,
or a card carrying a discoverable user's verified keys, is refused.

Hooks named ``on_*`` run inside a request that holds the storage write
lock; the operations of the API take the lock themselves.  The caps on a me
card's keys are :mod:`.key_caps`.

Why one module of about 400 lines: the hooks, the designation and the view
refresh all turn on the same two questions (:meth:`Owners.is_me_card`,
:meth:`Owners.copy_of`) and end in the same :meth:`Owners.refresh` and
:meth:`Owners.forget`; split apart, each piece would call back into the others.
"""

from __future__ import annotations

import time

from radicale import storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.consent.discovery import Discovery
from radicale_plugin.errors import BadCard, BadRequest, Conflict, NotFound
from radicale_plugin.index import Link, Owner
from radicale_plugin.owner.audiences import fields_in_use, withdrawn_in_use
from radicale_plugin.owner.key_caps import NEW_KEYS_WINDOW, KeyCaps
from radicale_plugin.vcard.limits import check_me_card
from radicale_plugin.vcard.matching import card_keys, line_key
from radicale_plugin.vcard.regions import Region, check_region
from radicale_plugin.vcard.codec import Card, parse_card, read_card
from radicale_plugin.vcard.view import View, check_fields, shared_view

__all__ = ["Owners", "ME_CARD_PROPERTY", "NEW_KEYS_WINDOW"]

#: Apple's "My Card" pointer on the address-book home, as Radicale names it.
ME_CARD_PROPERTY = "CS:me-card"


class Owners:
    """Me-card bookkeeping and the owner's sharing choices."""

    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self._ctx = ctx
        self._discovery = discovery
        self._caps = KeyCaps(ctx, discovery)

    # -- hooks, under the request's write lock ---------------------------------
    def is_me_card(self, owner: Owner, book: str, href: str, uid: str | None) -> bool:
        """Whether the card at book/href (or with that UID in the me card's book) is the me card.

        A card holding somebody's copy never becomes the me card by its UID.
        """
        if owner.book != book:
            return False
        if owner.href == href:
            return True
        return bool(owner.uid and uid == owner.uid) and self._ctx.index.links.at(book,
                                                                               href) is None

    def copy_of(self, user: str, book: str, href: str, uid: str | None) -> Link | None:
        """The link if the card at book/href holds somebody's copy for ``user``, or carries the
        UID of a card of theirs that does (a link belongs to the card: its UID, not its href).
        Such a card is never ``user``'s me card, whatever path would make it one."""
        index = self._ctx.index
        link = index.links.at(book, href)
        if link is not None and link.recipient == user:
            return link
        if not uid:
            return None
        for link in index.links.under(user):
            if link.recipient != user:
                continue
            linked_uid = link.uid
            if not linked_uid:
                card = index.cards.card(link.book, link.href)
                linked_uid = card.uid if card is not None else ""
            if linked_uid == uid:
                return link
        return None

    def check_upload(self, collection: storage.BaseCollection, href: str, text: str,
                     uid: str | None) -> None:
        """Refuse a write of a me card that breaks the rules, before it is stored."""
        owner = self._ctx.index.owners.get(store.user_of(collection.path))
        if self.is_me_card(owner, collection.path, href, uid):
            link = self.copy_of(owner.user, collection.path, href, uid)
            if link is not None:
                # e.g. a MOVE of the copy onto a me card given its UID: re-publication
                raise Conflict("that card holds the card %s shares with you (UID %s); a copy "
                               "of somebody else's card cannot be your me card"
                               % (link.owner, uid))
            self.check_upload_text(text, owner.user)

    def check_upload_text(self, text: str, user: str) -> None:
        """The checks a me card's text must pass (the same through CardDAV and the API)."""
        self.check_keys(user, check_me_card(text, self._ctx.settings.limits))

    def check_keys(self, user: str, card: Card, charge: bool = True) -> None:
        """Bound the numbers and e-mails a me card carries, and those new to it per day
        (:meth:`.key_caps.KeyCaps.check_keys`)."""
        self._caps.check_keys(user, card, charge)

    def on_written(self, collection: storage.BaseCollection, href: str, text: str,
                   uid: str | None) -> None:
        """A card was written: if it is the owner's me card, its view is read anew."""
        user = store.user_of(collection.path)
        owner = self._ctx.index.owners.get(user)
        if not self.is_me_card(owner, collection.path, href, uid):
            return
        if self.copy_of(user, collection.path, href, uid) is not None:
            logger.warning("Me card of %r now holds somebody's copy: it is no me card any "
                           "more", user)
            self.forget(user)
            return
        if owner.href != href or owner.uid != uid:
            # the me card is known by its UID too: the one it has now
            self._ctx.index.owners.set_me_card(user, collection.path, href, uid)
        self.refresh(owner, text)

    def on_deleted(self, path: str, href: str | None) -> None:
        """A card, book or user was deleted: a me card among them is forgotten."""
        user = store.user_of(path)
        owner = self._ctx.index.owners.get(user)
        if owner.book is None:
            return
        gone = (owner.book == path and href in (None, owner.href)) or (
            href is None and (owner.book + "/").startswith(path.strip("/") + "/"))
        if gone:
            logger.info("Me card of %r deleted: no further updates go out", user)
            self.forget(user)

    def on_replaced(self, collection: storage.BaseCollection) -> None:
        """A whole book was written: the me card is found again by its UID, or forgotten."""
        user = store.user_of(collection.path)
        owner = self._ctx.index.owners.get(user)
        if owner.book != collection.path:
            return
        for href, text in store.cards(collection):
            try:
                uid = parse_card(text).first_value("UID")
            except BadCard:
                continue
            if uid and uid == owner.uid:
                self._ctx.index.owners.set_me_card(user, owner.book, href, uid)
                self.refresh(owner, text)
                return
        logger.info("Me card of %r not in the replaced book %r any more", user, collection.path)
        self.forget(user)

    def on_moved(self, from_path: str, from_href: str,
                 to_collection: storage.BaseCollection, to_href: str, text: str
                 ) -> tuple[str, str | None] | None:
        """A card was moved: the me card is followed (or forgotten if it left the user).

        Returns (user, new value of their ``CS:me-card``; None: removed) when the me
        card moved, so that Apple's My Card keeps pointing at it.
        """
        user = store.user_of(from_path)
        owner = self._ctx.index.owners.get(user)
        moved: tuple[str, str | None] | None = None
        if owner.book == from_path and owner.href == from_href:
            if store.user_of(to_collection.path) != user:
                self.forget(user)
                return user, None
            self._ctx.index.owners.set_me_card(user, to_collection.path, to_href, owner.uid)
            moved = user, "/%s/%s" % (to_collection.path, to_href)
        target = self._ctx.index.owners.get(store.user_of(to_collection.path))
        if target.book == to_collection.path and target.href == to_href:
            if not self.refresh(target, text) and \
                    self._ctx.index.owners.get(target.user).href is None:
                return target.user, None  # it held somebody's copy: no me card any more
        return moved

    def on_me_card_property(self, principal: storage.BaseCollection,
                            value: str | None) -> str | None:
        """Designate (or with None forget) the me card named by a property value.

        Returns the value to store.  Raises a ValueError (a 4xx) for a path
        that is not a card of the user's own, or a card that cannot be theirs.
        """
        user = principal.path
        if value is None:
            self.forget(user)
            return None
        if not value.strip():
            # Radicale keeps only an element's text: Apple's nested <D:href> arrives
            # empty when the server runs without the WSGI layer.  Refuse it (never a
            # 200 the user would believe) rather than forget the card.
            logger.warning("Empty %s for %r refused: serve through radicale_plugin.wsgi "
                           "for Apple's form", ME_CARD_PROPERTY, user)
            raise BadRequest("the me card arrived empty: Apple's <D:href> form needs the "
                             "server's WSGI layer (docs/clients.md, 'iPhone and macOS'); "
                             "or set the me card through the API")
        book_path, href = store.split_card_path(user, value)
        collection = store.book(store.storage_of(principal), book_path)
        if collection is None:
            raise NotFound("no address book /%s/" % book_path)
        text = store.card_text(collection, href)
        if text is None:
            raise NotFound("no card %s in /%s/" % (href, book_path))
        card = check_me_card(text, self._ctx.settings.limits)
        self.check_keys(user, card, charge=False)
        self._check_designation(user, book_path, href, card)
        self._ctx.index.owners.set_me_card(user, book_path, href, card.first_value("UID"))
        logger.info("Me card of %r is now /%s/%s", user, book_path, href)
        self.refresh(self._ctx.index.owners.get(user), text)
        return "/%s/%s" % (book_path, href)

    def _check_designation(self, user: str, book: str, href: str, card: Card) -> None:
        """No re-publication: a copy, or another user's verified keys, cannot be shared."""
        link = self.copy_of(user, book, href, card.first_value("UID"))
        if link is not None:
            where = "holds" if (link.book, link.href) == (book, href) else \
                "has the UID of /%s/%s, which holds" % (link.book, link.href)
            raise Conflict("/%s/%s %s the card %s shares with you; a copy of somebody "
                           "else's card cannot be your me card" % (book, href, where, link.owner))
        # read in the region the card itself gives (its own +CC numbers), unless the user set one
        region = self._ctx.region(user, shared_view(card, self._ctx.index.owners.get(
            user).shared_fields)).code
        keys = card_keys(card, region)
        # this answer tells whether keys belong to somebody: it costs like /resolve
        self._discovery.charge(user, len(keys))
        holders = self._ctx.index.keys.holders(keys)
        theirs = sorted(k for k, holder in holders.items()
                        if holder != user and self._discovery.can_discover(user, holder))
        if theirs:
            raise Conflict("the card carries %s, verified by another user; your me card "
                           "shares only your own numbers and e-mails" % ", ".join(theirs))

    # -- views -----------------------------------------------------------------
    def refresh(self, owner: Owner, text: str, force: bool = False) -> bool:
        """Read the me card's shared view anew; queue it if it changed (or ``force``: what
        an audience gets changed).  The view holds every field some audience gets
        (:func:`.audiences.fields_in_use`); each recipient gets their audience's part.

        A me card that came to hold somebody's copy stops being one (nothing of it
        is shared any more), whatever path brought the copy there.
        """
        try:
            card = read_card(text)
        except BadCard as e:
            logger.warning("Me card of %r not shared: %s", owner.user, e)
            return False
        current = self._ctx.index.owners.get(owner.user)
        if current.book and current.href and self.copy_of(
                owner.user, current.book, current.href, card.first_value("UID")) is not None:
            logger.warning("Me card of %r holds somebody's copy: it is no me card any more",
                           owner.user)
            self.forget(owner.user)
            return False
        return self._record(owner.user, shared_view(card, fields_in_use(owner),
                                                    withdrawn_in_use(owner)), force)

    def refresh_keys(self, user: str) -> bool:
        """Recompute what is sent after keys changed hands (no storage needed)."""
        owner = self._ctx.index.owners.get(user)
        if owner.card_view is None or owner.view is None:
            return False
        return self._record(user, owner.card_view)

    def _record(self, user: str, card_view: View | None, force: bool = False) -> bool:
        index = self._ctx.index
        before = self._ctx.region_of(user)
        # the claims are read in the region this very me card gives (or the user's setting)
        region = self._ctx.region(user, card_view).code
        with index.transaction():
            if region != before:
                logger.info("Region of %r is now %s (their me card): their books are read "
                            "again", user, region)
                self._ctx.region_changed(user)
            if card_view is None:
                index.keys.set_claims(user, ())
                changed = index.owners.record_view(user, None, None, ())
            else:
                claims = card_view.keys(region)
                before_claims = {k.key for k in index.keys.of_user(user) if k.on_card}
                if claims - before_claims:  # counted for mecard_new_keys_per_day
                    index.keys.record_claims(user, claims - before_claims, time.time())
                index.keys.set_claims(user, claims)
                view = self._effective(user, card_view, region)
                changed = index.owners.record_view(user, card_view, view, view.values(region),
                                                   force)
        if changed and card_view is not None:
            logger.info("Me card of %r changed: update queued for its targets", user)
        return changed

    def _effective(self, user: str, card_view: View, region: str) -> View:
        """The view without keys that are evidently somebody else's.

        Left out: keys verified for another user the owner may discover (what
        ``/resolve`` would tell him), and keys on copies of other owners' cards
        in his own books.  A key verified for a user hidden from the owner
        stays, as a plain value: leaving it out would tell him that it is
        somebody's.  Keys verified for the owner always stay.
        """
        index = self._ctx.index
        keys = card_view.keys(region)
        if not keys:
            return card_view
        mine = index.keys.verified(user)
        visible = self._discovery.visible_holders(user, keys - mine)
        foreign = {k for k, holder in visible.items() if holder != user}
        copied: set[str] = set()
        for link in index.links.under(user):
            if link.recipient == user and link.owner != user:
                card = index.cards.card(link.book, link.href)
                if card is not None:
                    copied |= card.keys
        foreign |= (copied & keys) - mine
        if not foreign:
            return card_view
        logger.info("Me card of %r: %d number(s)/e-mail(s) of other users not shared",
                    user, len(foreign))
        return card_view.without(e for e in card_view.entries
                                 if line_key(e.name, e.value, region) in foreign)

    def forget(self, user: str) -> None:
        """The user has no me card any more: nothing further goes out (copies stay)."""
        self._ctx.index.owners.set_me_card(user, None, None, None)
        self._record(user, None)

    # -- operations of the API (they take the storage lock) --------------------
    def designate(self, user: str, path: str | None, withdraw: bool = False) -> None:
        """Make the card at ``path`` the user's me card (None: none; withdraw copies if asked)."""
        with self._ctx.storage.acquire_lock("w", user):
            principal = next(iter(self._ctx.storage.discover("/%s/" % user)), None)
            if not isinstance(principal, storage.BaseCollection):
                raise NotFound("user %r has no address-book home yet; log in once" % user)
            meta = dict(principal.get_meta())
            if path is None:
                meta.pop(ME_CARD_PROPERTY, None)
            else:
                meta[ME_CARD_PROPERTY] = path
            principal.set_meta(meta)
        if path is None and withdraw:
            gone = self._ctx.index.outbox.withdraw(user, None)
            logger.info("Owner %r withdraws their values from %d copies", user, len(gone))
            self._ctx.wake()

    def set_region(self, user: str, value: object) -> Region:
        """Set (a region code) or clear (None) the user's own region; the region in use.

        When the region in use changes, the user's me card is read again (its
        claims) and their books are marked to be read again; the caller reads
        them (:meth:`CardKeys.reindex`) once no lock is held.
        """
        try:
            code = None if value is None else check_region(value)
        except ValueError as e:
            raise BadRequest("%s; or null to use your me card's country code or the "
                             "server's default (%s)" % (e, self._ctx.settings.region)) from None
        index = self._ctx.index
        # the hooks read the region under this lock: none of them reads it half-changed
        with self._ctx.storage.acquire_lock("w", user):
            before = self._ctx.region_of(user)
            with index.transaction():
                index.owners.set_region(user, code)
                after = self._ctx.region_of(user)
                if after != before:
                    logger.info("Region of %r is now %s (their setting): their books are "
                                "read again", user, after)
                    self._ctx.region_changed(user)
                    self.refresh_keys(user)
        return self._ctx.region(user)

    def set_shared_fields(self, user: str, fields: list[str], withdraw: bool = False) -> None:
        """Share these fields; the values of fields no longer shared are withdrawn if asked."""
        wanted = check_fields(fields)
        with self._ctx.storage.acquire_lock("w", user):
            owner = self._ctx.index.owners.get(user)
            removed = [f for f in owner.shared_fields if f not in wanted]
            withdrawn = [f for f in owner.withdrawn_fields if f not in wanted]
            if withdraw:
                withdrawn += [f for f in removed if f not in withdrawn]
            self._ctx.index.owners.set_shared_fields(user, wanted, withdrawn)
            owner = self._ctx.index.owners.get(user)
            if owner.book and owner.href:
                collection = store.book(self._ctx.storage, owner.book)
                text = store.card_text(collection, owner.href) if collection else None
                if text is not None:
                    self.refresh(owner, text)

    def update_me_card(self, user: str, text: str, only: list[str] | None) -> dict:
        """Write new content into the me card and send it (to ``only``, or to all targets)."""
        card = check_me_card(text, self._ctx.settings.limits)
        index = self._ctx.index
        with self._ctx.storage.acquire_lock("w", user):
            owner = index.owners.get(user)
            if not owner.book or not owner.href:
                raise NotFound("you have no me card yet: designate one first")
            if card.first_value("UID") != owner.uid:
                raise BadRequest("the card's UID must stay %r (the me card's)" % owner.uid)
            collection = store.book(self._ctx.storage, owner.book)
            if collection is None:
                raise NotFound("your me card's book /%s/ is gone" % owner.book)
            store.write_card(collection, owner.href, text)
            after = index.owners.get(user)
            with index.transaction():
                if after.seq == owner.seq:
                    # unchanged view: send it anyway to whoever lacks it (after an "update some")
                    index.outbox.requeue(user)
                if only is not None:
                    index.outbox.restrict(user, sorted(set(only)))
        return {"seq": after.seq, "changed": after.seq != owner.seq}

    def withdraw(self, user: str, recipients: list[str] | None) -> list[str]:
        """Remove the owner's values from the copies of recipients no longer targeted."""
        gone = self._ctx.index.outbox.withdraw(user, recipients)
        if gone:
            logger.info("Owner %r withdraws their values from %d copies", user, len(gone))
            self._ctx.wake()
        return gone
