"""The manager's tokens: who a bearer is, and making, listing and revoking tokens.

Only digests are kept (in memory and in the store); a token is shown once, when made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tiercel.core.model import UserName
from tiercel.manager.auth import Identity, digest, new_token, token_id
from tiercel.store import DeleteToken, SaveToken, Store, TouchToken

log = logging.getLogger("tiercel.manager")

TOKEN_USE_RESOLUTION = 60.0  # seconds: how fresh a token's "last used" is kept in the store


class Tokens:
    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.known: dict[str, tuple[UserName, str]] = {}  # digest -> (user, role)
        self._used: dict[str, float] = {}
        # What to close when a token is revoked (event streams register here), by its digest.
        self.on_revoke: dict[str, set[Callable[[], None]]] = {}

    def identify(self, token: str | None) -> Identity | None:
        if token is None:
            return None
        d = digest(token)
        found = self.known.get(d)
        if found is None:
            return None
        now = self.clock()
        if now - self._used.get(d, 0.0) >= TOKEN_USE_RESOLUTION:
            self._used[d] = now
            self.store.write([TouchToken(d, now)])  # not awaited: a lost touch only makes "last used" older
        return Identity(found[0], found[1], d)

    async def create(self, user: UserName, role: str, label: str = "") -> str:
        token = new_token()
        d = digest(token)
        await asyncio.wrap_future(self.store.write([SaveToken(d, user, role, label, self.clock())]))
        self.known[d] = (user, role)
        return token

    def rows(self) -> list[dict[str, Any]]:
        """`tiercel token list`: every token but never its secret (only a digest is kept anyway)."""
        return [{"id": token_id(t.digest), "user": t.user, "role": t.role, "label": t.label, "created": t.created,
                 "last_used": max(t.last_used or 0.0, self._used.get(t.digest, 0.0)) or None}
                for t in self.store.tokens()]

    async def revoke(self, tid: str) -> Identity | None:
        """Forget the token whose id is ``tid`` (durably first) and close its event streams;
        whose it was, or None if there is no such token."""
        found = [d for d in self.known if token_id(d) == tid]
        if not found:
            return None
        d = found[0]
        await asyncio.wrap_future(self.store.write([DeleteToken(d)]))
        user, role = self.known.pop(d)
        self._used.pop(d, None)
        for close in list(self.on_revoke.pop(d, ())):
            close()
        log.warning("token %s (%s, %s) revoked", tid, user, role)
        return Identity(user, role, d)
