"""Training plots drawn with matplotlib from arrays (no fastai): the lr_find curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, suggestion: float, path: Path) -> Path:
    """Loss against learning rate (log x), the suggestion marked; saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    if len(lrs):
        y = np.interp(np.log(suggestion), np.log(lrs), losses)
        ax.plot([suggestion], [y], "o", color="C3", label=f"suggestion {suggestion:.2e}")
        ax.legend()
    ax.set_title("lr_find")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
