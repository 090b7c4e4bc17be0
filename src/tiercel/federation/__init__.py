"""Federation: managers exchange what their sites can do and forward ranges of job arrays to each other.

    link.py      one WebSocket per peer, either way (the one behind NAT connects out)
    origin.py    work leaving: the peer's place in the engine, its leases, results coming back
    inbound.py   work arriving: forwarded ranges run as local jobs, their results sent back in batches
    service.py   the peers together: summaries, round trips, time-outs, `tiercel peers`
    peers.py     one peer's state (links, last summary, refusals), kept by service.py, read by origin and inbound

The pure part (leases, epochs, offers, time-outs) is core/federation.py; the messages are wire/peer.py;
the [peers.NAME] tables are read by tiercel/peerconfig.py, below the manager, whose settings hold them
(here it would be above it: this package builds on the manager).
"""
