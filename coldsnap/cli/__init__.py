"""The ``coldsnap`` command."""
