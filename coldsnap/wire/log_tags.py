"""Which input printed a log line, when a container runs several at once: the runtime
prefixes the lines an input prints with its call id, the server strips the tag and
hands the line to that call's caller only. Example::

    tag_line("fc-1a2b", "loading") == "\\x1efc-1a2b\\x1eloading"
    untag_line("\\x1efc-1a2b\\x1eloading") == ("fc-1a2b", "loading")
    untag_line("plain") == (None, "plain")
"""

from __future__ import annotations

_MARK = "\x1e"  # ASCII record separator: not in text a program means to print
_MAX_ID = 64


def tag_line(call_id: str, line: str) -> str:
    return f"{_MARK}{call_id}{_MARK}{line}"


def untag_line(line: str) -> tuple[str | None, str]:
    """(call id, the line without its tag); (None, line) for an untagged line."""
    if not line.startswith(_MARK):
        return None, line
    end = line.find(_MARK, 1, _MAX_ID + 2)
    if end < 0:
        return None, line
    return line[1:end], line[end + 1:]
