"""A PNG of every measured boot: plain cold boots against restored ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_boots(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boots = [r for r in rows if "cold" in r]
    if not boots:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, r in enumerate(boots):
        for offset, key, color, label in ((-0.15, "cold", "#c44e52", "no snapshot"),
                                          (0.15, "restored", "#4c72b0", "from snapshot")):
            samples = r[key]["samples_s"]
            ax.scatter([i + offset] * len(samples), samples, color=color, alpha=0.7,
                       label=label if i == 0 else None)
            ax.hlines(r[key]["median_s"], i + offset - 0.1, i + offset + 0.1, color=color)
        ax.annotate(f"{r['speedup']:.1f}x", (i, r["cold"]["median_s"]), ha="center",
                    textcoords="offset points", xytext=(0, 10))
    ax.set_xticks(range(len(boots)), [r["name"] for r in boots])
    ax.set_yscale("log")
    ax.set_ylabel("call to first result (s, log scale)")
    ax.set_title("coldsnap: cold boots with and without a memory snapshot")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
