"""What ``classify predict`` returns and writes: :class:`PredictResult` (one row per file, and
per window with a timeline) and its CSV writers: the per-file table, the timeline and the
Freesound (Kaggle) submission. CSVs are written without pandas; DataFrames are built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec2img.io import sheet_cell, sheet_table, write_atomic

from ..errors import ClassifyError


@dataclass
class PredictResult:
    """``rows``: one dict per input file (input order), ``table`` the same as a DataFrame;
    ``probs`` ``(n_files, n_classes)`` (NaN rows for failed files); ``timeline_rows`` /
    ``timeline``: one row per window, or None. ``unknown_threshold``: the open-set threshold the
    ``label`` column was decided with (None: no open-set columns). The DataFrames are built on first use, so that
    predicting and writing CSVs never imports pandas (the CLI answers sooner)."""

    rows: list[dict]
    probs: np.ndarray
    classes: list[str]
    multi_label: bool
    threshold: float | None
    timeline_rows: list[dict] | None = None
    n_models: int = 1
    n_windows: int = 0
    feature_seconds: float = 0.0
    model_seconds: float = 0.0
    unknown_threshold: float | None = None

    @property
    def table(self):
        """``pandas.DataFrame`` of :attr:`rows` (columns as in :func:`write_csv`)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.rows[0]) if self.rows else ["file", "status", "error"])

    @property
    def timeline(self):
        """``pandas.DataFrame`` of :attr:`timeline_rows`, or None."""
        if self.timeline_rows is None:
            return None
        import pandas as pd

        return pd.DataFrame(self.timeline_rows, columns=timeline_columns(self.classes))

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(r["file"], r["error"]) for r in self.rows if r["status"] != "ok"]

    def line(self) -> str:
        n, bad = len(self.rows), len(self.failures)
        return (f"{n - bad} file(s) predicted, {bad} failed ({self.n_windows} windows, "
                f"{self.n_models} model(s); features {self.feature_seconds:.1f} s, "
                f"model {self.model_seconds:.1f} s)")


def timeline_columns(classes: list[str]) -> list[str]:
    return ["file", "start", "end", "label", "prob"] + [f"p_{c}" for c in classes]


# ------------------------------------------------------------------------------------ writers
DEFAULT_OUT = Path("predictions.csv")


def output_path(out: Path | None, result: PredictResult, *, folder: Path = Path(".")) -> tuple[Path, str]:
    """Where :func:`write_csv` may write: ``out`` when the user named it, else ``folder/predictions.csv``,
    or ``predictions-1.csv``, ``-2``, ... when that exists (a file the user did not name is never
    replaced). The note says which name was taken instead (empty when none).

    Raises :class:`ClassifyError` (nothing is written) when no input file could be predicted: every
    input a typo, say.
    """
    if result.rows and not any(r["status"] == "ok" for r in result.rows):
        file, why = result.failures[0]
        raise ClassifyError(f"none of the {len(result.rows)} input(s) could be predicted "
                            f"({why if file in why else f'{file}: {why}'}); nothing written")
    if out is not None:
        return Path(out), ""
    path, n = Path(folder) / DEFAULT_OUT, 0
    while path.exists() or path.is_symlink():
        n += 1
        path = Path(folder) / f"{DEFAULT_OUT.stem}-{n}{DEFAULT_OUT.suffix}"
    note = f"{Path(folder) / DEFAULT_OUT} exists: wrote {path} instead (name one with --out)" if n else ""
    return path, note


def csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    """CSV of ``rows`` as pandas' ``to_csv(index=False, float_format="%.6g")`` writes it
    (NaN and None as empty cells), without importing pandas; text cells pass
    :func:`spec2img.io.sheet_cell`, so a file name like ``=cmd|...`` never runs in a spreadsheet."""
    import csv
    import io
    import math

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.6g}"
        return sheet_cell(v)

    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow([sheet_cell(c) for c in columns])
    for r in rows:
        out.writerow([cell(r.get(c)) for c in columns])
    return buf.getvalue().encode()


def write_csv(result: PredictResult, path: Path) -> Path:
    """The per-file table (``file, [labels,] label_1, prob_1, ..., [p_<class>...,] status, error``)."""
    columns = list(result.rows[0]) if result.rows else ["file", "status", "error"]
    write_atomic(Path(path), csv_bytes(result.rows, columns))
    return Path(path)


def write_timeline(result: PredictResult, path: Path) -> Path:
    """Per-window rows ``file, start, end, label, prob, p_<class>...`` (seconds)."""
    if result.timeline_rows is None:
        raise ClassifyError("no timeline was computed; pass timeline=True")
    write_atomic(Path(path), csv_bytes(result.timeline_rows, timeline_columns(result.classes)))
    return Path(path)


def kaggle_table(result: PredictResult):
    """Freesound submission: every input file, in input order, named by its file name.

    Single-label (Freesound 2018, MAP@3): ``fname,label`` with the top 3 labels space-separated
    (spaces inside a class name become ``_``). A failed file keeps its row with an empty label
    (Kaggle accepts it and scores it 0). Multi-label (Freesound 2019, lwlrap): ``fname`` and one
    probability column per class; a failed file gets zeros.
    """
    import pandas as pd

    fnames = [Path(r["file"]).name for r in result.rows]
    if result.multi_label:
        p = np.nan_to_num(result.probs, nan=0.0)
        return pd.concat([pd.DataFrame({"fname": fnames}), pd.DataFrame(p, columns=result.classes)], axis=1)
    labels = []
    for p in result.probs:
        if np.isnan(p).any():
            labels.append("")
        else:
            top = np.argsort(-p, kind="stable")[:3]
            labels.append(" ".join(result.classes[j].replace(" ", "_") for j in top))
    return pd.DataFrame({"fname": fnames, "label": labels})


def write_kaggle(result: PredictResult, path: Path) -> Path:
    write_atomic(Path(path), sheet_table(kaggle_table(result)).to_csv(index=False, float_format="%.6g").encode())
    return Path(path)
