"""App names: one rule for ``App(name)`` in the SDK and ``deploy --name`` at the server."""

from __future__ import annotations

import pytest

from coldsnap.server.describe import check_app_name
from coldsnap.server.errors import ApiError
from coldsnap.wire.errors import InvalidError

BAD_NAMES = [".", "..", "x;rm", "a" * 65, "a\nb", "abc\n", "a b", "-x", "", "a/b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_app_names_follow_the_sdks_rule(name: str) -> None:
    with pytest.raises(ApiError, match="is not valid: use 1-64 letters, digits"):
        check_app_name(name)
    with pytest.raises(InvalidError, match="is invalid: use 1-64 letters, digits"):
        import coldsnap

        coldsnap.App(name)
