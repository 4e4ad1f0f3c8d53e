"""The exceptions coldsnap itself raises (user code's own exceptions pass through)."""

from __future__ import annotations


class Error(Exception):
    """Base class of every error coldsnap raises."""


class InvalidError(Error):
    """coldsnap's API was used in a way that can't work; the message says how to fix it."""
