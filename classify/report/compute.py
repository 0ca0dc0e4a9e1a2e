"""Pure computations behind the report: arrays and tables in, arrays and tables out. No I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..scoring import metrics
from ..scoring.evaluate import clip_average

class_counts = metrics.class_counts  # clips per label: one home in classify.scoring.metrics (fit uses it too)


def fold_spread(per_fold: list[dict[str, float]]) -> pd.DataFrame:
    """Mean and (sample) standard deviation of each metric across folds; index metric name."""
    df = pd.DataFrame(per_fold)
    df = df.select_dtypes("number")
    return pd.DataFrame({"mean": df.mean(), "std": df.std(ddof=1) if len(df) > 1 else 0.0, "n_folds": len(df)})


def per_class_table(classes: list[str], probs: np.ndarray, truth: np.ndarray, y: np.ndarray,
                    pred: np.ndarray, multi_label: bool) -> pd.DataFrame:
    """One row per class: precision, recall, F1, support, predicted count (+ AP, lwlrap for
    multi-label; the class it is most often mistaken for, for single-label)."""
    n_classes = len(classes)
    if multi_label:
        pc = metrics.per_class_multi_label(truth, probs)
        df = pd.DataFrame({"class": classes, **pc})
        df["predicted"] = (probs >= 0.5).sum(axis=0)
        return df
    pc = metrics.per_class_prf(y, pred, n_classes)
    df = pd.DataFrame({"class": classes, **pc})
    df["predicted"] = np.bincount(pred, minlength=n_classes)
    cm = metrics.confusion(y, pred, n_classes)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    worst = off.argmax(axis=1)
    df["confused_with"] = [classes[j] if off[i, j] > 0 else "" for i, j in enumerate(worst)]
    df["confused_count"] = off[np.arange(n_classes), worst]
    return df


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (each true class sums to 1; empty rows stay 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def most_confused(cm: np.ndarray, classes: list[str], *, min_count: int = 1, top: int | None = None) -> pd.DataFrame:
    """Off-diagonal cells with at least ``min_count`` clips, most clips first.

    Columns ``true``, ``pred`` (names), ``i``, ``j`` (indices), ``count``, ``share`` (count / support
    of the true class). Ties: higher share first, then by true then predicted index.
    """
    cm = np.asarray(cm)
    share = normalise_rows(cm)
    i, j = np.nonzero(cm >= max(min_count, 1))
    keep = i != j
    i, j = i[keep], j[keep]
    df = pd.DataFrame({
        "true": [classes[a] for a in i], "pred": [classes[b] for b in j], "i": i, "j": j,
        "count": cm[i, j].astype(np.int64), "share": share[i, j],
    })
    df = df.sort_values(["count", "share", "i", "j"], ascending=[False, False, True, True], kind="stable")
    df = df.reset_index(drop=True)
    return df.head(top) if top is not None else df


def cell_items(y: np.ndarray, pred: np.ndarray, loss: np.ndarray, max_per_cell: int) -> dict[tuple[int, int], list[int]]:
    """Row indices behind each confusion cell (true ``y``, predicted ``pred``), highest loss
    first, at most ``max_per_cell`` per cell."""
    order = np.lexsort((np.arange(len(loss)), -np.nan_to_num(np.asarray(loss, float), nan=-np.inf)))
    cells: dict[tuple[int, int], list[int]] = {}
    for r in order:
        key = (int(y[r]), int(pred[r]))
        lst = cells.setdefault(key, [])
        if len(lst) < max_per_cell:
            lst.append(int(r))
    return cells


def top_losses(loss: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest losses, worst first (ties by row order)."""
    loss = np.nan_to_num(np.asarray(loss, float), nan=-np.inf)
    return np.lexsort((np.arange(len(loss)), -loss))[:n]


def time_windows(offset: np.ndarray, window: float | None) -> list[tuple[float, float] | None]:
    """(start, end) seconds of each row's image in its clip; None where the offset is unknown or
    images keep the whole clip (``window`` None)."""
    if window is None:
        return [None] * len(offset)
    return [None if np.isnan(o) else (float(o), float(o) + float(window)) for o in np.asarray(offset, float)]


EXACT_TSNE_MAX = 300  # rows up to which t-SNE uses the exact O(n^2) gradient


def tsne_perplexity(n: int) -> float:
    """sklearn's default 30, lowered for small sets (must stay below n; about n/4 works)."""
    return float(max(2.0, min(30.0, (n - 1) / 4)))


def tsne_2d(x: np.ndarray, *, seed: int = 0, max_iter: int = 500) -> np.ndarray:
    """2-D t-SNE of the rows of ``x`` [shape=(n, d)], scaled into [0, 1]^2 [shape=(n, 2)].

    Features are standardised and reduced to 50 PCA components first when d > 50 (the usual
    recipe: faster and less noisy). Deterministic for a given ``seed``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 4:  # t-SNE needs a few points; spread them on a line
        out = np.zeros((n, 2))
        out[:, 0] = np.linspace(0, 1, n) if n > 1 else 0.5
        return out + [0, 0.5]
    x = np.nan_to_num(x)
    x = x - x.mean(axis=0)
    std = x.std(axis=0)
    x = x / np.where(std > 0, std, 1)
    if x.shape[1] > 50 and n > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    small = n <= EXACT_TSNE_MAX
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity(n), init="pca", random_state=seed,
                max_iter=max(250, max_iter), learning_rate="auto", method="exact" if small else "barnes_hut")
    # one thread: reproducible, and OpenMP threads crawl on a busy machine (4,000 x 50: 35 s on
    # one thread vs > 90 s on two under load); small sets use the exact gradient, faster there
    with threadpool_limits(1):
        xy = tsne.fit_transform(x)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return (xy - lo) / np.where(hi > lo, hi - lo, 1)


def duration_summary(durations: pd.Series) -> dict[str, float]:
    """count, total hours, min / median / mean / max seconds of the known durations."""
    d = pd.to_numeric(durations, errors="coerce").dropna()
    if d.empty:
        return {}
    return {"count": int(d.size), "hours": float(d.sum() / 3600), "min": float(d.min()),
            "median": float(d.median()), "mean": float(d.mean()), "max": float(d.max())}


def clip_level(probs: np.ndarray, truth: np.ndarray, sources) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-clip scores as ``classify fit`` computes its metrics: the mean of each clip's window
    probabilities (:func:`classify.scoring.evaluate.clip_average`). Returns ``(probs [shape=(n_clips, K)],
    truth [shape=(n_clips, K)] bool (any window's), y [shape=(n_clips,)])`` in first-seen clip order."""
    codes, _ = pd.factorize(pd.Series(list(sources)).astype(str))
    _, p = clip_average(np.asarray(probs, np.float64), codes)
    _, t = clip_average(np.asarray(truth, np.float64), codes)
    t = t > 0
    y = np.where(t.any(axis=1), np.argmax(t, axis=1), -1)
    return p, t, y


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 clip"``, ``"2 clips"``, ``"1,200 clips"``."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def human_number(v) -> str:
    """A number as people write it: ``15000``, ``0.003``, ``3e-5``, ``0.25``; never ``1.5e+04``."""
    import math

    if isinstance(v, (bool, np.bool_)) or v is None:
        return str(v).lower() if v is not None else "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v) or math.isinf(v):
        return "–" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 1e-3:
        digits = max(0, 3 - int(math.floor(math.log10(abs(v)))))
        text = f"{v:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mant, exp = f"{v:.1e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
