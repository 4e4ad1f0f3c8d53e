"""``modal.queue``'s name, for Modal code that imports the module::

    import coldsnap.queue                 # Modal: import modal.queue
    from coldsnap.queue import Queue      # Modal: from modal.queue import Queue
"""

from coldsnap.dict_queue import Queue

__all__ = ["Queue"]
