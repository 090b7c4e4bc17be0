"""Everything XMPP: Kestrel's chat over XMPP, ad-hoc commands, and workers that reach the manager by XMPP.

The manager logs in to an XMPP server as Kestrel's manager did. One session carries people's chat
messages and command menus, and the worker protocol of XMPP workers; the server's presence tells
the manager at once when a worker goes. Each module, from the wire up:

- ``link``: what both ends share: logging in and staying logged in (``Connector``), and how a
  worker frame travels in ``headline`` stanzas, cut into pieces and joined again;
- ``config``: the ``[xmpp]`` table of the manager's configuration, checked, every error naming
  its key;
- ``kestrel``: Kestrel's chat messages, parsed and written (no XMPP in it);
- ``chat``: what the manager answers to each message of a Tiercel user;
- ``ratelimit``: a token bucket per JID, so one sender cannot flood the manager;
- ``jids``: the durable directory of which JID is which Tiercel user (the table and run-time links);
- (the ``/v1/jids`` REST routes over that directory are in ``gateways.rest.jids``);
- ``adhoc``: ad-hoc commands (XEP-0050) for clients with command menus;
- ``workers``: the manager's side of XMPP workers: their frames and presence, fed to the
  manager like a WebSocket worker's;
- ``gateway``: the manager's XMPP client tying chat, ad-hoc commands and workers together,
  started again should it fail; ``attach`` hooks it and the JID routes into the manager;
- ``worker_link``: the worker's side (``tiercel worker --xmpp``): the WebSocket worker's agent
  with an XMPP link instead.

The worker's side lives here rather than in ``worker/`` because it is one protocol: its codec
(``link``), its settings and both of its ends change together, and a change to one end is
checked against the other in one place. The worker imports this package only when started
with ``--xmpp``, so this file imports nothing: importing ``worker_link`` must not pull in the
manager, FastAPI or the chat gateway.
"""
