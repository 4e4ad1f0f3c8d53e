"""``gpu=``: Modal's GPU strings, parsed into requests a host's GPUs can be matched against.

Modal's forms, case-insensitive: ``"any"``, a type (``"T4"``, ``"A100-80GB"``), a type
with a count (``"H100:8"``), a type pinned with ``!`` (``"H100!"``: an H100, never the
H200 Modal may upgrade an H100 to), or a list of them, tried in order (fallbacks)::

    parse_gpu(["H100:2", "A100-80GB:2"])
    # (GpuRequest(kind='H100', count=2, exact=False), GpuRequest(kind='A100-80GB', ...))

Which host GPU a type matches is ``GpuRequest.matches(model_name)``: the words of the
NVIDIA model name (``"NVIDIA A100-SXM4-80GB"``: NVIDIA, A100, SXM4, 80GB).
"""

from __future__ import annotations

import dataclasses
import re

ANY = "ANY"
MAX_COUNT = 8  # Modal's most GPUs per container
# Modal's GPU types -> the words a host GPU's model name must hold (one of the tuples);
# the first tuple is the type itself, later ones are the upgrades Modal may give.
GPU_TYPES: dict[str, tuple[tuple[str, ...], ...]] = {
    "T4": (("T4",),),
    "L4": (("L4",),),
    "A10": (("A10",), ("A10G",)),
    "A10G": (("A10G",), ("A10",)),
    "L40S": (("L40S",),),
    "A100": (("A100", "40GB"), ("A100",)),  # Modal's A100 is 40 GB, upgraded to 80 GB
    "A100-40GB": (("A100", "40GB"),),
    "A100-80GB": (("A100", "80GB"),),
    "RTX-PRO-6000": (("RTX", "PRO", "6000"),),
    "H100": (("H100",), ("H200",)),  # Modal may upgrade an H100 to an H200
    "H200": (("H200",),),
    "B200": (("B200",),),
    "B200+": (("B200",), ("B300",)),
}
_GPU_RE = re.compile(r"^(?P<kind>[A-Z0-9+-]+?)(?P<exact>!)?(:(?P<count>[0-9]+))?$")
VALID_FORMS = ('"any", a GPU type (' + ", ".join(f'"{t}"' for t in GPU_TYPES)
               + '), a type with a count ("H100:8"), a type pinned with "!" ("H100!"), '
               'or a list of them in order of preference (["H100", "A100-80GB"])')


@dataclasses.dataclass(frozen=True)
class GpuRequest:
    """One form: ``count`` GPUs of ``kind`` (``ANY``: any GPU); ``exact``: no upgrade."""

    kind: str
    count: int = 1
    exact: bool = False

    def matches(self, model_name: str) -> bool:
        """Whether a host GPU named ``model_name`` (NVIDIA's name) serves this request."""
        if self.kind == ANY:
            return True
        words = set(re.split(r"[\s_-]+", model_name.upper()))
        accepted = GPU_TYPES[self.kind][:1] if self.exact else GPU_TYPES[self.kind]
        return any(set(needed) <= words for needed in accepted)

    def __str__(self) -> str:
        kind = "any" if self.kind == ANY else self.kind
        return f"{kind}{'!' if self.exact else ''}{f':{self.count}' if self.count > 1 else ''}"


def parse_gpu(value: object) -> tuple[GpuRequest, ...]:
    """``gpu=`` as requests in order of preference; () for None. ValueError says why and
    lists the valid forms."""
    if value is None:
        return ()
    forms = list(value) if isinstance(value, list | tuple) else [value]
    if not forms:
        raise ValueError(f"gpu=[] names no GPU; use None for no GPU, or {VALID_FORMS}")
    return tuple(_parse_one(form) for form in forms)


def _parse_one(form: object) -> GpuRequest:
    if not isinstance(form, str):
        raise ValueError(f"gpu must be a string or a list of strings, not {form!r}; "
                         f"valid forms: {VALID_FORMS}")
    match = _GPU_RE.match(form.strip().upper())
    kind = match["kind"] if match else ""
    if match is None or (kind != ANY and kind not in GPU_TYPES):
        raise ValueError(f"gpu={form!r} is not a GPU coldsnap knows; valid forms: "
                         f"{VALID_FORMS}")
    count = int(match["count"] or 1)
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"gpu={form!r} asks for {count} GPUs; a container may have "
                         f"1 to {MAX_COUNT}")
    if kind == ANY and match["exact"]:
        raise ValueError(f'gpu={form!r}: "!" pins a GPU type, and "any" is none; '
                         'write "any" or a type like "H100!"')
    return GpuRequest(kind, count, bool(match["exact"]))
