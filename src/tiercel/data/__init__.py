"""The shell around data-aware placement: what Gfarm says of a job's files (``gfarm``: its commands,
batched, and their parsers) and the manager's cache of it (``service``: threads, never the event loop)."""
