"""Files that hold a secret (a peer's token, the store's or an XMPP account's password) must be
readable by their owner alone, as ssh asks of a private key: a token or a password that other
accounts on the host can read is theirs too. Refused by name, with the command that mends it."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path


def exposed(path: Path) -> str | None:
    """Why other accounts can reach the secret in ``path``, and how to mend it; None when only its owner
    can read or write it (or it cannot be looked at: the caller says that by itself)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return (f"is readable or writable by other accounts (mode {mode:04o}); a secret must be its owner's "
                f"alone: chmod 600 {shlex.quote(str(path))}")
    return None
