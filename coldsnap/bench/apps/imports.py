"""Benchmark workload `imports`: a heavy set of installed packages, no model."""

import coldsnap

# The server's own packages, as the bare-Python baseline imports them.
image = coldsnap.Image.from_host()
app = coldsnap.App("bench-imports", image=image)

with image.imports():
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import scipy.optimize  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import torch
    import transformers  # noqa: F401


@app.function(enable_memory_snapshot=True)
def ping() -> str:
    return f"torch {torch.__version__}, {len(__import__('sys').modules)} modules loaded"
