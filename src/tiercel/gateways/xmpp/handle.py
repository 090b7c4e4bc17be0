"""What the manager holds of its XMPP side: the JID links API always, the chat gateway when configured.

Apart from gateway.py so that a manager without an [xmpp] table never loads the XMPP library.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from tiercel.gateways.rest.jids import router
from tiercel.gateways.xmpp.config import XmppConfig
from tiercel.gateways.xmpp.jids import JidDirectory
from tiercel.manager.shell import Manager

if TYPE_CHECKING:
    from tiercel.gateways.xmpp.gateway import XmppGateway

log = logging.getLogger("tiercel.xmpp")


class GatewayHandle:
    """What the manager's lifespan holds: start in its task group, stop on the way out."""

    def __init__(self, manager: Manager, config: XmppConfig | None, jids: JidDirectory) -> None:
        self.manager, self.config, self.jids = manager, config, jids
        self.gateway: XmppGateway | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, tg: asyncio.TaskGroup) -> None:
        if self.config is not None:
            self.task = tg.create_task(self._run(self.config))

    async def _run(self, config: XmppConfig) -> None:
        """The gateway, started again should it fail: the manager serves on whatever happens here."""
        from tiercel.gateways.xmpp import gateway as gw  # slixmpp: loaded only by a manager that speaks XMPP
        while True:
            try:
                old = self.gateway
                self.gateway = gw.XmppGateway(self.manager, config, self.jids)  # inside the loop slixmpp binds to
                if old is not None:  # who submitted what, what is still to be said, and limits carry over
                    new = self.gateway
                    new.submitted_by, new.pending, new.limits, new.refused = (old.submitted_by, old.pending,
                                                                              old.limits, old.refused)
                    new.pending.extend(old.held)
                await self.gateway.run()
                return
            except Exception:
                log.exception("the XMPP gateway failed; starting it again in %.0fs", gw.RESTART_DELAY)
            await asyncio.sleep(gw.RESTART_DELAY)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def attach(manager: Manager, app: FastAPI, config: XmppConfig | None) -> GatewayHandle:
    """The JID links API (/v1/jids), and the gateway when the configuration has an [xmpp] table."""
    jids = JidDirectory(manager.settings.state_dir, config.users if config is not None else None)
    app.include_router(router(manager, jids))
    return GatewayHandle(manager, config, jids)
