"""Static matplotlib figures (Agg) drawn from arrays the report has already computed.

Each function takes plain arrays / tables and a destination path, writes one PNG and returns it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..training.plots import DPI, PLAIN_TEXT, plot_lr_find  # noqa: E402,F401  (the one lr_find plot)


def _plain_text(draw):
    """Run a plot function with mathtext off, so no user string is parsed as markup."""
    import functools

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(PLAIN_TEXT):
            return draw(*args, **kwargs)

    return wrapper


LOSS_COLUMNS = ("train_loss", "valid_loss")
NOT_METRICS = {"epoch", "time", "fold", "lr", "mom", *LOSS_COLUMNS}


def _save(fig, path: Path) -> Path:
    from spec2img.io import write_figure

    try:
        return write_figure(fig, path, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)


@_plain_text
def history_plot(history: pd.DataFrame, path: Path) -> Path:
    """Loss curves (left) and metric curves (right) per epoch; one line style per fold if any."""
    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(10, 3.4))
    groups = list(history.groupby("fold", sort=False)) if "fold" in history else [("", history)]
    metric_cols = [c for c in history.columns
                   if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(history[c])]
    for g, (fold, h) in enumerate(groups):
        x = h["epoch"].to_numpy() if "epoch" in h else np.arange(len(h))
        suffix = f" {fold}" if fold != "" else ""
        alpha = 1.0 if len(groups) == 1 else 0.75
        for k, col in enumerate(c for c in LOSS_COLUMNS if c in h):
            ax_l.plot(x, h[col], color=f"C{k}", alpha=alpha, marker=".",
                      label=col + suffix if g == 0 or len(groups) <= 5 else None)
        for k, col in enumerate(metric_cols):
            ax_m.plot(x, h[col], color=f"C{k + 2}", alpha=alpha, marker=".",
                      label=col + suffix if g == 0 or len(groups) <= 5 else None)
    for ax, title in ((ax_l, "loss"), (ax_m, "metrics")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return _save(fig, path)


@_plain_text
def class_distribution_plot(counts: pd.Series, path: Path, title: str = "clips per class") -> Path:
    """Horizontal bars, most frequent class on top; height grows with the number of classes."""
    n = len(counts)
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.16 * n + 0.8)))
    ax.barh(np.arange(n), counts.to_numpy(), color="#4c72b0")
    ax.set_yticks(np.arange(n))
    ax.set_yticklabels([str(c) for c in counts.index], fontsize=7 if n > 40 else 8)
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


@_plain_text
def duration_plot(durations: np.ndarray, path: Path) -> Path:
    """Histogram of clip durations in seconds."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(np.asarray(durations, float), bins=min(50, max(5, int(np.sqrt(len(durations))))), color="#55a868")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("clips")
    ax.set_title("clip durations")
    ax.grid(alpha=0.3)
    return _save(fig, path)
