"""A chat user in its own process, as Pidgin or Gajim would be: a plain slixmpp client.

    python chat_client.py JID PASSWORD HOST PORT CA_FILE

It reads one JSON command per line on stdin and writes one JSON event per line on stdout:

    {"op": "send", "to": JID, "body": TEXT}          -> a chat message, exactly as typed
    {"op": "flood", "to": JID, "body": TEXT, "n": N} -> N messages at once
    {"op": "commands", "to": FULL_JID}               -> {"event": "commands", "items": [[node, name], ...]}
    {"op": "execute", "to": FULL_JID, "node": NODE, "fields": {VAR: VALUE}}
                                                     -> {"event": "command", "node": ..., "notes": [...]}
    {"op": "quit"}

Every message received becomes {"event": "message", "from": ..., "body": ...}. It logs in
again by itself when the server goes away ({"event": "ready"} each time it is online).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import slixmpp


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main() -> None:
    jid, password, host, port, ca = sys.argv[1:6]
    client = slixmpp.ClientXMPP(jid, password)
    client.enable_plaintext = False
    client.enable_direct_tls = False
    client.enable_starttls = True
    client.ca_certs = ca
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        client.register_plugin(plugin)
    online = asyncio.Event()

    async def started(_: Any) -> None:
        client.send_presence()
        online.set()
        emit({"event": "ready", "jid": str(client.boundjid)})

    def message(msg: Any) -> None:
        if msg["type"] in ("chat", "normal", "error") and msg["body"]:
            emit({"event": "message", "from": str(msg["from"]), "type": msg["type"], "body": msg["body"]})

    async def reconnect(_: Any) -> None:
        online.clear()
        if not quitting:
            await asyncio.sleep(0.5)
            client.connect(host, int(port))

    quitting = False
    client.add_event_handler("session_start", started)
    client.add_event_handler("message", message)
    client.add_event_handler("disconnected", reconnect)
    client.connect(host, int(port))

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        await online.wait()
        try:
            await run(client, cmd)
        except Exception as exc:
            emit({"event": "failed", "op": op, "error": f"{type(exc).__name__}: {exc}"})
    quitting = True
    client.disconnect()
    await asyncio.sleep(0.3)


async def run(client: slixmpp.ClientXMPP, cmd: dict[str, Any]) -> None:
    op = cmd["op"]
    if op == "send":
        client.send_message(mto=cmd["to"], mbody=cmd["body"], mtype="chat")
    elif op == "flood":
        for _ in range(int(cmd["n"])):
            client.send_message(mto=cmd["to"], mbody=cmd["body"], mtype="chat")
        emit({"event": "flooded", "n": cmd["n"]})
    elif op == "commands":
        iq = await client.plugin["xep_0050"].get_commands(jid=cmd["to"])
        items = [[i[1], i[2]] for i in iq["disco_items"]["items"]]
        emit({"event": "commands", "items": items})
    elif op == "execute":
        iq = await client.plugin["xep_0050"].send_command(cmd["to"], cmd["node"], action="execute")
        if iq["command"]["status"] == "executing":
            form = client.plugin["xep_0004"].make_form(ftype="submit")
            for var, value in cmd.get("fields", {}).items():
                form.add_field(var=var, value=value)
            iq = await client.plugin["xep_0050"].send_command(
                cmd["to"], cmd["node"], action="complete", payload=form, sessionid=iq["command"]["sessionid"])
        emit({"event": "command", "node": cmd["node"], "status": iq["command"]["status"],
              "notes": [[kind, text] for kind, text in iq["command"]["notes"]]})


if __name__ == "__main__":
    asyncio.run(main())
