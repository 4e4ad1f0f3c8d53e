"""What runs right after a restore: new env, new container id, fresh RNG seeds.

Every restored copy starts from identical memory, so without reseeding each
one would draw the same "random" numbers.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

from coldsnap.wire.container import CONTAINER_ID_ENV
from coldsnap.wire.control import Resume


def apply_resume(resume: Resume) -> None:
    """Apply a ``resume`` message: env changes (None unsets), container id, seed."""
    for name, value in resume.env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if resume.container_id:
        os.environ[CONTAINER_ID_ENV] = resume.container_id
    if resume.seed is not None:
        reseed(resume.seed)


def reseed(seed: int) -> None:
    """Reseed ``random``, and numpy's and torch's global RNGs if already imported."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        _try("numpy.random.seed", lambda: numpy.random.seed(seed % 2**32))
    torch = sys.modules.get("torch")
    if torch is not None:
        # Queues the CUDA seeding lazily: it does not create a CUDA context.
        _try("torch.manual_seed", lambda: torch.manual_seed(seed))


def _try(what: str, reseed_one: Any) -> None:
    try:
        reseed_one()
    except Exception as exc:  # a broken optional library must not fail the boot
        print(f"coldsnap: {what} failed after restore, RNG not reseeded: {exc!r}", file=sys.stderr)
