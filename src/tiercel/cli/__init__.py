"""The ``tiercel`` command line."""
