"""``coldsnap.call_graph``: what ``FunctionCall.get_call_graph()`` returns (Modal's
``modal.call_graph``). Example::

    from coldsnap.call_graph import InputStatus

    root = coldsnap.FunctionCall.from_id(call_id).get_call_graph()[0]
    done = all(child.status == InputStatus.SUCCESS for child in root.children)
"""

from __future__ import annotations

from coldsnap.wire.call_graph import InputInfo, InputStatus

__all__ = ["InputInfo", "InputStatus"]
