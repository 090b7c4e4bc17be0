"""The manager: the I/O shell around the core engine (API, worker channel, store)."""
