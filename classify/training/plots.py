"""Training plots drawn with matplotlib from arrays (no fastai): the lr_find curve.

The one lr_find plot: training writes ``lr_find.png`` with it and the report draws its copy with
it (matplotlib imported on first use, Agg backend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 96
# user strings (class names, file names) are drawn as typed: "$x^$" is text, not mathtext
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, marks: dict[str, float], path: Path) -> Path:
    """Loss against learning rate (log x) with each named rate in ``marks`` as a vertical line.

    ``lrs``, ``losses`` [shape=(n,)]; the y range stops before the diverging tail. Saved as PNG at
    ``path`` (parent folders made); returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    with plt.rc_context(PLAIN_TEXT):
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.plot(lrs, losses, color="#1f77b4")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        colours = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        for (name, lr), c in zip(marks.items(), colours * 4):
            ax.axvline(lr, color=c, ls="--", lw=1.2, label=f"{name} = {lr:.2g}")
        if marks:
            ax.legend(fontsize=8)
        losses = np.asarray(losses, float)
        if np.isfinite(losses).sum() > 4:  # the diverging tail would flatten the useful part
            best = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan)))
            head = losses[: best + 1][np.isfinite(losses[: best + 1])]
            lo, hi = float(losses[best]), float(head.max())
            pad = 0.1 * (hi - lo) if hi > lo else 0.1 * abs(lo) + 0.1
            ax.set_ylim(lo - pad, hi + 2 * pad)
        ax.set_title("lr_find")
        ax.grid(alpha=0.3)
        from spec2img.io import write_figure

        try:
            write_figure(fig, path, dpi=DPI, bbox_inches="tight")
        finally:
            plt.close(fig)
    return path
