"""Bearer tokens: only a digest is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from tiercel.core.model import UserName

ROLES = ("admin", "user", "worker", "peer")


@dataclass(frozen=True, slots=True)
class Identity:
    user: UserName
    role: str
    digest: str = ""  # of the token that proved it: what revocation and a worker's id are bound to

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def may_work(self) -> bool:
        return self.role in ("admin", "worker")

    @property
    def may_peer(self) -> bool:
        """A peer manager: it exchanges summaries and runs forwarded work, and nothing else."""
        return self.role == "peer"

    @property
    def may_submit(self) -> bool:
        return self.role in ("admin", "user")

    def sees(self, owner: str) -> bool:
        """Whether this person may read and act on what ``owner`` submitted: their own, or anyone's for
        an admin (whoever may not is told it is unknown, so ids reveal nothing)."""
        return owner == self.user or self.admin


def new_token() -> str:
    return "tc_" + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token_digest: str) -> str:
    """A token's public id: the start of its digest, which reveals nothing of the token itself."""
    return token_digest[:12]


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
