"""Image building, on the server: build steps, the builder, and the built-image store.

``steps`` turns an image spec's layers into a venv and a files layer,
``builder`` runs them (and ``@build`` methods, in a container) and caches the
result in ``store``; ``deploy`` builds what one deploy needs.
"""
