"""``modal.dict``'s name, for Modal code that imports the module::

    import coldsnap.dict                  # Modal: import modal.dict
    from coldsnap.dict import Dict        # Modal: from modal.dict import Dict
"""

from coldsnap.dict_queue import Dict

__all__ = ["Dict"]
