"""The ``tiercel`` commands, one module per topic.

Each module defines plain click commands and groups and imports only shared helpers
(``tiercel.cli.common``, ``jobopts``, ``progress``); ``tiercel.cli.main`` registers them on the
``tiercel`` group, so no command module needs the group and the imports run one way.
"""
