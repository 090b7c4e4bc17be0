"""Gateways: other ways in to the manager (the Kestrel chat protocol over XMPP)."""
