"""``Retries``: how often and how far apart a failed call is tried again (Modal's
``modal.Retries``); ``retries=`` on a function or class takes one, or an int.

An int ``n`` is ``Retries(max_retries=n)``: 1 s, then 2 s, 4 s, ... at most 60 s.
The policy travels to the server in the function's options (``to_dict``), and the
server's scheduler asks ``delay(attempt)`` before each new attempt. Example::

    @app.function(retries=coldsnap.Retries(max_retries=3, initial_delay=0.5,
                                           backoff_coefficient=1.0))
    def flaky() -> str: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from coldsnap.wire.errors import InvalidError

# Modal's bounds.
MAX_RETRIES = 10
MAX_DELAY_S = 60.0
MIN_BACKOFF, MAX_BACKOFF = 1.0, 10.0


@dataclasses.dataclass(frozen=True)
class Retries:
    """Try a failed call up to ``max_retries`` more times; the first retry waits
    ``initial_delay`` s, each next one ``backoff_coefficient`` times longer, at most
    ``max_delay`` s."""

    max_retries: int
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0

    def __init__(self, *, max_retries: int, backoff_coefficient: float = 2.0,
                 initial_delay: float = 1.0, max_delay: float = 60.0) -> None:
        # Keyword-only, as Modal's: Retries(3) would be ambiguous to a reader.
        object.__setattr__(self, "max_retries", max_retries)
        object.__setattr__(self, "backoff_coefficient", backoff_coefficient)
        object.__setattr__(self, "initial_delay", initial_delay)
        object.__setattr__(self, "max_delay", max_delay)
        problems = list(self._problems())
        if problems:
            raise InvalidError("coldsnap.Retries(...): " + "; ".join(problems) + ".")

    def _problems(self) -> Iterator[str]:
        if not (_is_int(self.max_retries) and 0 <= self.max_retries <= MAX_RETRIES):
            yield (f"max_retries must be an integer from 0 to {MAX_RETRIES}, "
                   f"not {self.max_retries!r}")
        if not (_is_number(self.backoff_coefficient)
                and MIN_BACKOFF <= self.backoff_coefficient <= MAX_BACKOFF):
            yield (f"backoff_coefficient must be a number from {MIN_BACKOFF:g} to "
                   f"{MAX_BACKOFF:g}, not {self.backoff_coefficient!r}")
        if not (_is_number(self.initial_delay) and 0 <= self.initial_delay <= MAX_DELAY_S):
            yield (f"initial_delay must be a number of seconds from 0 to {MAX_DELAY_S:g}, "
                   f"not {self.initial_delay!r}")
        if not (_is_number(self.max_delay) and 1 <= self.max_delay <= MAX_DELAY_S):
            yield (f"max_delay must be a number of seconds from 1 to {MAX_DELAY_S:g}, "
                   f"not {self.max_delay!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        wait = self.initial_delay * self.backoff_coefficient ** (attempt - 1)
        return float(min(self.max_delay, wait))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: object) -> Retries:
        """An options' ``retries``: an int, a Retries, or ``to_dict()``'s form."""
        if isinstance(value, Retries):
            return value
        if isinstance(value, dict):
            return cls(**value)
        if not _is_int(value):
            raise InvalidError(f"retries must be an integer from 0 to {MAX_RETRIES} or a "
                               f"coldsnap.Retries(...), not {value!r}")
        return cls(max_retries=value)  # type: ignore[arg-type]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
