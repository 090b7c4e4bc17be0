"""What the manager and XMPP workers share: how to log in, and how frames travel in stanzas.

The worker protocol over XMPP is the WebSocket one, message for message: the same msgpack
frames (``hello``, ``res``, ``tasks``, ``ack``, ...), base64-encoded in a ``<frame/>`` element
of a ``headline`` message addressed to the peer's full JID. Headlines are never stored
offline nor copied to the account's other clients, so a frame reaches the one session it was
meant for or nobody. Frames larger than a server's stanza limit are cut into pieces marked
``more="1"``; XMPP delivers the stanzas of one sender to one recipient in order, so the
receiver only has to join them.

:class:`Connector` keeps a client logged in: it reconnects with capped backoff when the
server goes away, and reports a refused password once instead of retrying blindly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import slixmpp
from slixmpp.stanza import Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from tiercel.gateways.xmpp.endpoint import Endpoint, TlsMode

log = logging.getLogger("tiercel.xmpp")

__all__ = ["Endpoint", "TlsMode"]

NS = "urn:tiercel:worker:1"
CHUNK = 48 * 1024  # raw bytes per stanza: 64 KiB once in base64, well under Prosody's 256 KiB limit
MAX_FRAME = 64 * 1024 * 1024  # as on the WebSocket channel



class FrameElement(ElementBase):
    """``<frame xmlns="urn:tiercel:worker:1" more="1">BASE64</frame>``"""

    name = "frame"
    namespace = NS
    plugin_attrib = "tiercel_frame"
    interfaces: ClassVar[set[str]] = {"more"}


register_stanza_plugin(Message, FrameElement)


def make_client(jid: str, password: str, endpoint: Endpoint, **plugins: dict[str, Any]) -> slixmpp.ClientXMPP:
    """A client set up for ``endpoint``; ``plugins`` are plugin configs to load (e.g. xep_0199={})."""
    config: dict[str, dict[str, Any]] = dict(plugins)
    if endpoint.tls == "plain":
        # slixmpp refuses SASL on an unencrypted stream unless told at construction time.
        config["feature_mechanisms"] = {"unencrypted_scram": True, "unencrypted_plain": True}
    client = slixmpp.ClientXMPP(jid, password, plugin_config=config)
    client.enable_plaintext = endpoint.tls == "plain"
    client.enable_starttls = endpoint.tls == "starttls"
    client.enable_direct_tls = endpoint.tls == "direct"
    if endpoint.ca_file is not None:
        client.ca_certs = endpoint.ca_file
    client.whitespace_keepalive_interval = 30
    for name in plugins:
        client.register_plugin(name)
    return client


def send_frame(client: slixmpp.ClientXMPP, to: slixmpp.JID | str, frame: bytes) -> None:
    """Send one msgpack frame, cut into as many stanzas as it needs."""
    for piece, more in _pieces(frame):
        msg = client.make_message(mto=to, mtype="headline")
        el = msg["tiercel_frame"]
        el.xml.text = base64.b64encode(piece).decode("ascii")
        if more:
            el["more"] = "1"
        msg.send()


def _pieces(frame: bytes) -> Iterator[tuple[bytes, bool]]:
    if len(frame) <= CHUNK:
        yield frame, False
        return
    for start in range(0, len(frame), CHUNK):
        yield frame[start:start + CHUNK], start + CHUNK < len(frame)


class Assembler:
    """Joins the pieces of frames, per sender; at most ``limit`` bytes wait in all."""

    def __init__(self, limit: int = 4 * MAX_FRAME) -> None:
        self.partial: dict[str, list[bytes]] = {}
        self.limit = limit
        self.held = 0  # bytes of unfinished frames, all senders together
        self.dropping: set[str] = set()  # senders whose frame was dropped halfway: skip to its last piece

    def feed(self, sender: str, msg: Message) -> bytes | None:
        """The whole frame once its last piece arrived; None while pieces are missing or if it is not valid."""
        el = msg["tiercel_frame"]
        try:
            piece = base64.b64decode(el.xml.text or "", validate=True)
        except ValueError:
            self._drop(sender, el["more"] == "1")
            log.warning("dropped a frame from %s that is not base64", sender)
            return None
        if sender in self.dropping:
            if el["more"] != "1":
                self.dropping.discard(sender)
            return None
        if el["more"] != "1" and sender not in self.partial:
            return piece  # a frame in one piece, the usual case
        parts = self.partial.setdefault(sender, [])
        parts.append(piece)
        self.held += len(piece)
        if el["more"] == "1":
            if sum(len(p) for p in parts) > MAX_FRAME:
                self._drop(sender, True)
                log.warning("dropped a frame of more than %d bytes from %s", MAX_FRAME, sender)
            elif self.held > self.limit:
                self._drop(sender, True)
                log.warning("dropped a frame from %s: unfinished frames of all workers hold more than %d bytes",
                            sender, self.limit)
            return None
        self.forget(sender)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def forget(self, sender: str) -> None:
        """The sender is gone: whatever it was sending will not come."""
        self.dropping.discard(sender)
        parts = self.partial.pop(sender, None)
        if parts is not None:
            self.held -= sum(len(p) for p in parts)

    def _drop(self, sender: str, more: bool) -> None:
        self.forget(sender)
        if more:
            self.dropping.add(sender)


def on_frames(client: slixmpp.ClientXMPP, handler: Callable[[Any], None]) -> None:
    """Call ``handler`` with every message that carries a frame (slixmpp's message event needs a body)."""
    client.register_handler(Callback("tiercel frame", StanzaPath("message/tiercel_frame"), handler))


class AuthRefused(Exception):
    """The server refused the account's password: retrying will not help."""


class Connector:
    """Keeps one client connected: connect, wait for the session, reconnect with backoff on loss.

    ``on_refused`` decides what a refused password does: the manager keeps trying slowly (an
    operator may fix the account), a worker stops with an error.
    """

    def __init__(self, client: slixmpp.ClientXMPP, endpoint: Endpoint, *, backoff_max: float = 5.0,
                 keepalive: float = 30.0, login_timeout: float = 30.0,
                 on_refused: Callable[[], float | None] | None = None) -> None:
        self.client = client
        self.login_timeout = login_timeout
        self.endpoint = endpoint
        self.backoff_max = backoff_max
        self.keepalive = keepalive
        self.on_refused = on_refused
        self.online = asyncio.Event()
        self._lost = asyncio.Event()
        self._refused = False
        self._stopping = False
        self.last_error = ""
        client.add_event_handler("session_start", self._started)
        client.add_event_handler("disconnected", self._disconnected)
        client.add_event_handler("connection_failed", self._failed)
        client.add_event_handler("failed_all_auth", self._failed_auth)

    def _started(self, _: Any) -> None:
        self.online.set()
        self._lost.clear()

    def _disconnected(self, _: Any) -> None:
        self.online.clear()
        self._lost.set()

    def _failed(self, error: Any) -> None:
        self.last_error = f"{error}{ssl_error_hint(error)}"
        self._lost.set()

    def _failed_auth(self, _: Any) -> None:
        self._refused = True

    async def run(self) -> None:
        """Until cancelled, or until a refused password makes ``on_refused`` return None."""
        delay = 0.2
        host, port = self.endpoint.host, self.endpoint.port
        try:
            while not self._stopping:
                self._lost.clear()
                self._refused = False
                attempt = self.client.connect(host, port) if host and port else self.client.connect()
                if await self._session_or_loss():
                    delay = 0.2
                    await self._stay_online()
                else:
                    with contextlib.suppress(Exception):
                        self.client.cancel_connection_attempt()
                        attempt.cancel()
                if self._stopping:
                    break
                if self._refused:
                    wait = self.on_refused() if self.on_refused else 60.0
                    if wait is None:
                        raise AuthRefused(str(self.client.boundjid.bare))
                    await asyncio.sleep(wait)
                    continue
                log.warning("XMPP server %s unreachable%s; retrying in %.1fs", host or self.client.boundjid.host,
                            f" ({self.last_error})" if self.last_error else "", delay)
                self.last_error = ""
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.backoff_max)
        except asyncio.CancelledError:
            raise  # still online, if it was: stop() says goodbye, and the disconnected event clears it
        except BaseException:
            self.online.clear()
            raise

    async def _session_or_loss(self) -> bool:
        """True once the session started; False when the attempt failed or took too long."""
        online = asyncio.ensure_future(self.online.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({online, lost}, timeout=self.login_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            online.cancel()
            lost.cancel()
        if self.online.is_set():
            return True
        if not self._lost.is_set():  # neither: still trying inside slixmpp; start over
            self.client.abort()
        return False

    async def _stay_online(self) -> None:
        """Wait for the connection to drop; a server ping that goes unanswered drops it."""
        while not self._lost.is_set():
            lost = asyncio.ensure_future(self._lost.wait())
            try:
                await asyncio.wait_for(asyncio.shield(lost), self.keepalive)
            except TimeoutError:
                if not await self._server_answers():
                    log.warning("the XMPP server did not answer a ping: reconnecting")
                    self.client.abort()
                    await self._lost.wait()
            finally:
                lost.cancel()

    async def _server_answers(self) -> bool:
        if "xep_0199" not in self.client.plugin:
            return True
        try:
            await self.client.plugin["xep_0199"].ping(slixmpp.JID(self.client.boundjid.host), timeout=self.keepalive)
        except slixmpp.exceptions.IqTimeout:
            return False
        except slixmpp.exceptions.IqError:
            return True  # an error reply is still an answer
        return True

    async def stop(self, status: str = "") -> None:
        """Say goodbye (unavailable presence) and close the stream."""
        self._stopping = True
        if self.online.is_set():
            with contextlib.suppress(Exception):
                self.client.send_presence(ptype="unavailable", pstatus=status or None)
                await asyncio.wait_for(self.client.disconnect(wait=2.0), 3.0)
        with contextlib.suppress(Exception):
            self.client.cancel_connection_attempt()
        self.client.abort()


def ssl_error_hint(exc: object) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return " (the server's certificate is not trusted: give its CA with ca_file)"
    return ""
