"""The worker protocol: every message between a manager and its workers, as types, and their codec.

``messages`` defines each message and the protocol version a worker and a manager agree on at
hello; ``codec`` turns messages into msgpack maps with short keys and back, saying what is wrong
with a malformed one. A batch of tasks or results travels in one frame, so a task never costs a
round trip of its own. The stored form of a job is the store's own (``store.specs``): the wire
and the store change apart.
"""
