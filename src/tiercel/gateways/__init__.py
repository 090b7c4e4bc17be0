"""Gateways: the ways in to the manager, each a thin translation between a protocol and the
shell's commands and queries — ``rest`` (the REST API, the event stream), ``xmpp`` (Kestrel's
chat messages, ad-hoc commands, XMPP workers), ``web`` (the dashboard, to come)."""
