"""Who is who on XMPP: bare JIDs mapped to Tiercel users.

Two sources: the ``[xmpp.users]`` table of the configuration, and links an admin makes
at run time with ``tiercel user link-jid JID USER`` (kept in ``xmpp-jids.json`` in the
state dir, written atomically). A link overrides the table for the same JID. A user's
JIDs are also where ``job_finished`` goes for jobs they submitted another way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tiercel.core.model import UserName
from tiercel.core.problems import SetupError

FILE = "xmpp-jids.json"


class JidDirectory:
    def __init__(self, state_dir: Path, configured: dict[str, str] | None = None) -> None:
        self.path = state_dir / FILE
        self.configured = dict(configured or {})
        self.linked: dict[str, str] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.linked = {str(k): str(v) for k, v in data.get("links", {}).items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            raise SetupError(f"{self.path}: cannot be read ({exc}); fix or remove it") from None

    def user_of(self, jid: str) -> UserName | None:
        user = self.linked.get(jid) or self.configured.get(jid)
        return None if user is None else UserName(user)

    def jids_of(self, user: str) -> list[str]:
        merged = {**self.configured, **self.linked}
        return sorted(j for j, u in merged.items() if u == user)

    def rows(self) -> list[dict[str, str]]:
        rows = [{"jid": j, "user": u, "source": "config"} for j, u in self.configured.items() if j not in self.linked]
        rows += [{"jid": j, "user": u, "source": "linked"} for j, u in self.linked.items()]
        return sorted(rows, key=lambda r: (r["user"], r["jid"]))

    def link(self, jid: str, user: str) -> None:
        self._save({**self.linked, jid: user})

    def unlink(self, jid: str) -> bool:
        if jid not in self.linked:
            return False
        self._save({j: u for j, u in self.linked.items() if j != jid})
        return True

    def _save(self, links: dict[str, str]) -> None:
        """Write the new links durably, then use them: a failed write changes nothing."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the state dir's files are private
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"links": links}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        self.linked = links
