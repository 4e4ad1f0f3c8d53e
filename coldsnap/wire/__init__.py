"""The contract that the client, the server and the container share.

Everything both ends of a socket or pipe must agree on lives here and nowhere
else: message framing, how values are serialized, the error kinds a client
branches on, the token, the socket API's op names, the container's environment
names and control-pipe messages, the app-name rule, what a container needs to
boot, a function's options, an app's description and its image spec, the names
of a boot's timing steps, the exit codes a client reads, and which Debian
suite gives each Python of ``debian_slim``.

This package imports nothing else of coldsnap (a test checks it), so any side
may import it without pulling in the others.
"""
