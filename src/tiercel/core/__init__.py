"""The pure core of Tiercel: model, task state machine and scheduling decisions.

Nothing in this package performs I/O, reads a clock or awaits: time comes in as
``now`` and every decision comes out as a value (effects, plans, problems).
"""
