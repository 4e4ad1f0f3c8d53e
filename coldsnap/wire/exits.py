"""Exit statuses of ``coldsnap serve`` that its callers branch on.

The CLI exits with them; a client that started a server in the background reads
them (``Client.ensure_server``) to tell a lost race from a failure.
"""

EXIT_BAD_SETTING = 2  # a COLDSNAP_ setting is malformed (COLDSNAP_TCP, COLDSNAP_LOG_LEVEL)
EXIT_ALREADY_RUNNING = 3  # another server holds the state dir: use that one
