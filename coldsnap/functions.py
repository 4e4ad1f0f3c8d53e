"""``modal.functions``'s names, for Modal code that imports them from there::

    from coldsnap.functions import FunctionCall   # Modal: from modal.functions import ...
"""

from coldsnap.handles import Function, FunctionCall

__all__ = ["Function", "FunctionCall"]
