"""Audit an audio folder before converting it: per-file statistics, per-class counts, an HTML page.

Compute first (:func:`file_stats`, :func:`class_table`: plain dicts and DataFrames), write second
(:func:`write_audit`: ``audit.csv``, ``audit_classes.csv``, ``audit.html``). Files are streamed in
blocks, so an hour-long recording costs a few MB of memory. An unreadable file gives a row with
``status="failed"`` and the reason in ``error``; it never stops the audit.

Per-file columns (``audit.csv``): ``path`` (relative to AUDIO_DIR), ``labels`` (';'-joined),
``manually_verified`` and ``fold`` (when a labels CSV gives them), ``duration`` (s, samples actually decoded), ``samplerate``
(Hz), ``channels``, ``format``, ``subtype`` (e.g. PCM_16, FLOAT), ``bits`` (bit depth, empty for
compressed formats), ``peak_dbfs``, ``rms_dbfs`` (over all channels), ``silent_share`` (fraction of
50 ms frames whose RMS is below -60 dBFS), ``clipped`` / ``clipped_share`` (samples with
``|x| >= 0.999``), ``nonfinite`` (NaN/Inf samples), ``issues`` (';'-joined flags: silent,
mostly_silent, clipped, nonfinite, short), ``status`` (ok / failed), ``error``.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from .audio import _unreadable
from .errors import AudioError
from .io import write_atomic
from .labels import ClipLabels, folder_labels, read_labels_csv
from .manifest import join_cell, split_cell
from .paths import regular_file_error, walk_audio

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.05  # silence is judged on 50 ms frames
SILENT_DBFS = -60.0  # a frame quieter than this (RMS) counts as silent
CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped
FRAMES_PER_BLOCK = 200  # 10 s blocks of 50 ms frames
SHORT_SECONDS = 0.05  # shorter than about one 2048-sample window at 44.1 kHz
MOSTLY_SILENT = 0.9
FLOOR_DB = -200.0  # dBFS reported for digital silence instead of -inf

COLUMNS = [
    "path", "labels", "manually_verified", "fold", "duration", "samplerate", "channels", "format", "subtype",
    "bits", "peak_dbfs", "rms_dbfs", "silent_share", "clipped", "clipped_share", "nonfinite", "issues",
    "status", "error",
]
_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
         "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32}


@dataclass(frozen=True)
class AuditResult:
    """Tables of one audit; ``paths`` holds the written files (empty when nothing was written)."""

    files: pd.DataFrame
    classes: pd.DataFrame
    paths: tuple[Path, ...] = ()

    @property
    def n_failed(self) -> int:
        return int((self.files["status"] == "failed").sum())

    def line(self) -> str:
        """One-line summary for the CLI."""
        f = self.files
        hours = f.loc[f["status"] == "ok", "duration"].sum() / 3600
        issues = int((f["issues"].fillna("") != "").sum())
        where = f"; wrote {self.paths[-1]}" if self.paths else ""
        return (f"audited {len(f)} files ({hours:.2f} h) in {len(self.classes)} classes: "
                f"{self.n_failed} failed, {issues} with issues{where}")


# ------------------------------------------------------------------ compute
def _db(x: float) -> float:
    return float(20 * np.log10(x)) if x > 0 else FLOOR_DB


def file_stats(path: Path) -> dict:
    """Header and signal statistics of one file, streamed in 10 s blocks (see module docstring).

    Returns a dict with the per-file columns except ``path``/``labels``/``manually_verified``.
    Never raises for a bad file: ``status`` is ``"failed"`` and ``error`` says why.
    """
    path = Path(path)
    row: dict = {"status": "ok", "error": ""}
    bad = regular_file_error(path)
    if bad:  # never hand libsndfile a FIFO or a missing file
        return {**row, "status": "failed", "error": bad}
    try:
        info = sf.info(str(path))
        sr, ch = int(info.samplerate), int(info.channels)
        row.update(samplerate=sr, channels=ch, format=info.format, subtype=info.subtype,
                   bits=_BITS.get(info.subtype))
        frame = max(1, int(round(FRAME_SECONDS * sr)))
        n = peak = sumsq = clipped = nonfinite = silent = frames = 0
        thresh = (10 ** (SILENT_DBFS / 20)) ** 2
        for block in sf.blocks(str(path), blocksize=frame * FRAMES_PER_BLOCK, dtype="float32", always_2d=True):
            finite = np.isfinite(block)
            if not finite.all():
                nonfinite += int((~finite).sum())
                block = np.where(finite, block, 0.0).astype(np.float32)
            a = np.abs(block)
            n += block.shape[0]
            peak = max(peak, float(a.max(initial=0.0)))
            sq = block.astype(np.float64) ** 2
            sumsq += float(sq.sum())
            clipped += int((a >= CLIP_LEVEL).sum())
            k = -(-block.shape[0] // frame)  # frames in this block, the last one maybe partial
            per_frame = np.add.reduceat(sq.sum(axis=1), np.arange(0, block.shape[0], frame))
            sizes = np.minimum(frame, block.shape[0] - np.arange(k) * frame) * ch
            silent += int((per_frame / sizes < thresh).sum())
            frames += k
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        return {**row, "status": "failed", "error": _unreadable(path, exc)}
    if n == 0:
        return {**row, "status": "failed", "error": f"{path}: holds no samples (zero-length audio)"}
    samples = n * ch
    row.update(
        duration=n / sr, peak_dbfs=_db(peak), rms_dbfs=_db(np.sqrt(sumsq / samples)),
        silent_share=silent / frames, clipped=clipped, clipped_share=clipped / samples, nonfinite=nonfinite,
    )
    issues = []
    if peak < 1e-6:
        issues.append("silent")
    elif row["silent_share"] >= MOSTLY_SILENT:
        issues.append("mostly_silent")
    if clipped:
        issues.append("clipped")
    if nonfinite:
        issues.append("nonfinite")
    if row["duration"] < SHORT_SECONDS:
        issues.append("short")
    row["issues"] = ";".join(issues)
    return row


def audit_table(
    audio_dir: Path,
    *,
    labels: Mapping[str, ClipLabels] | None = None,
    jobs: int | None = 1,
    follow_symlinks: bool = False,
) -> pd.DataFrame:
    """One row per audio file under ``audio_dir`` (columns in the module docstring).

    ``labels`` maps a path relative to ``audio_dir`` (POSIX separators) to its
    :class:`~spec2img.labels.ClipLabels`; without it the first folder below ``audio_dir`` names
    the class (:func:`spec2img.labels.folder_labels`). Files the mapping names but the folder
    lacks still get a (failed) row. ``jobs``: worker processes, None for all cores. Entries the
    folder walk refuses (:func:`spec2img.paths.walk_audio`: links leaving the folder unless
    ``follow_symlinks``, hidden and special files, unsupported formats) get a row with their status.
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise AudioError(f"{audio_dir}: not a folder; pass the folder that holds the audio files")
    entries = walk_audio(audio_dir, follow_symlinks=follow_symlinks)
    refused = {e.path: e for e in entries if not e.ok}
    paths = [e.path for e in entries if e.ok]
    if labels is None:
        labels = {rel.as_posix(): lab for rel, lab in folder_labels(audio_dir, paths).items()}
    else:
        labels = {Path(rel).as_posix(): lab for rel, lab in labels.items()}
        on_disk = {p.relative_to(audio_dir).as_posix() for p in paths} | {e.rel for e in refused.values()}
        paths += [audio_dir / rel for rel in sorted(set(labels) - on_disk)]
    jobs = os.cpu_count() or 1 if jobs is None else jobs
    log.info("auditing %d files under %s", len(paths), audio_dir)
    if jobs > 1 and len(paths) > 1:
        with ProcessPoolExecutor(min(jobs, len(paths))) as pool:
            stats = list(pool.map(file_stats, paths, chunksize=8))
    else:
        stats = [file_stats(p) for p in paths]
    stats += [{"status": e.status, "error": e.error} for e in refused.values()]
    paths += list(refused)
    rows = []
    for p, st in zip(paths, stats):
        rel = refused[p].rel if p in refused else p.relative_to(audio_dir).as_posix()
        lab = labels.get(rel)
        rows.append({
            "path": rel,
            "labels": join_cell(lab.labels) if lab else "",
            "manually_verified": None if lab is None or lab.verified is None else int(lab.verified),
            "fold": None if lab is None else lab.fold,
            **st,
        })
    df = pd.DataFrame(sorted(rows, key=lambda r: r["path"]), columns=COLUMNS)
    for col in ("samplerate", "channels", "bits", "clipped", "nonfinite", "manually_verified", "fold"):
        df[col] = df[col].astype("Int64")
    return df


def class_table(files: pd.DataFrame) -> pd.DataFrame:
    """Per-label counts from :func:`audit_table`: ``label, files, ok, failed, total_duration,
    median_duration, min_duration, max_duration`` (s) and ``verified_share`` when known.

    A multi-label file counts once for each of its labels; unlabelled files are ``(none)``.
    """
    df = files.assign(label=files["labels"].fillna("").map(split_cell)).explode("label")
    df["label"] = df["label"].fillna("").replace("", "(none)")
    g = df.groupby("label", sort=True)
    out = pd.DataFrame({
        "files": g.size(),
        "ok": g["status"].apply(lambda s: int((s == "ok").sum())),
        "failed": g["status"].apply(lambda s: int((s == "failed").sum())),
        "total_duration": g["duration"].sum(min_count=1),
        "median_duration": g["duration"].median(),
        "min_duration": g["duration"].min(),
        "max_duration": g["duration"].max(),
    })
    if files["manually_verified"].notna().any():
        out["verified_share"] = g["manually_verified"].apply(lambda s: float(s.dropna().mean()) if s.notna().any() else np.nan)
    return out.reset_index().sort_values(["files", "label"], ascending=[False, True], ignore_index=True)


# ------------------------------------------------------------------ write
def audit(
    audio_dir: Path,
    *,
    out_dir: Path | None = None,
    labels_csv: Path | None = None,
    file_col: str | None = None,
    label_col: str | None = None,
    fold_col: str | None = None,
    jobs: int | None = None,
    follow_symlinks: bool = False,
) -> AuditResult:
    """Audit ``audio_dir``; with ``out_dir`` also write ``audit.csv``, ``audit_classes.csv`` and a
    self-contained ``audit.html`` (inline PNG charts, no network) there.

    Labels come from ``labels_csv`` (any layout :func:`spec2img.labels.read_labels_csv` knows,
    or the explicit ``*_col`` names) or else from the folder-per-class layout.
    """
    audio_dir = Path(audio_dir)
    labels = None
    if labels_csv is not None:
        if not audio_dir.is_dir():
            raise AudioError(f"{audio_dir}: not a folder; pass the folder that holds the audio files")
        listed = [e.path for e in walk_audio(audio_dir, follow_symlinks=follow_symlinks)]
        rel = read_labels_csv(labels_csv, audio_dir, listed, file_col=file_col,
                              label_col=label_col, fold_col=fold_col)
        labels = {p.as_posix(): lab for p, lab in rel.items()}
    files = audit_table(audio_dir, labels=labels, jobs=jobs, follow_symlinks=follow_symlinks)
    classes = class_table(files)
    result = AuditResult(files, classes)
    if out_dir is not None:
        result = AuditResult(files, classes, write_audit(result, Path(out_dir), title=str(audio_dir)))
    if result.n_failed:
        log.warning("%d of %d files could not be read; see the error column", result.n_failed, len(files))
    return result


def write_audit(result: AuditResult, out_dir: Path, *, title: str = "") -> tuple[Path, ...]:
    """Write the three audit files into ``out_dir``; returns their paths."""
    paths = (out_dir / "audit.csv", out_dir / "audit_classes.csv", out_dir / "audit.html")
    write_atomic(paths[0], result.files.to_csv(index=False).encode())
    write_atomic(paths[1], result.classes.to_csv(index=False).encode())
    write_atomic(paths[2], render_html(result, title=title).encode())
    return paths


def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _charts(result: AuditResult) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    cl = result.classes
    if len(cl):
        fig, ax = plt.subplots(figsize=(7, 0.25 * len(cl) + 1.0))
        ax.barh(cl["label"][::-1], cl["files"][::-1], color="#4c72b0")
        ax.set_xlabel("files")
        ax.set_title("files per class")
        charts.append(("Class distribution", _png_data_uri(fig)))
        plt.close(fig)
    ok = result.files[result.files["status"] == "ok"]
    if len(ok):
        exploded = ok.assign(label=ok["labels"].str.split(";")).explode("label")
        exploded["label"] = exploded["label"].replace("", "(none)")
        order = list(cl["label"][cl["label"].isin(exploded["label"])])
        data = [exploded.loc[exploded["label"] == lab, "duration"].to_numpy(float) for lab in order]
        fig, ax = plt.subplots(figsize=(7, 0.25 * len(order) + 1.0))
        pos = np.arange(len(order))[::-1]
        ax.boxplot(data, positions=pos, orientation="horizontal", widths=0.6, showfliers=False)
        rng = np.random.default_rng(0)
        for y, d in zip(pos, data):
            ax.plot(d, y + rng.uniform(-0.2, 0.2, d.size), ".", color="#dd8452", alpha=0.6, ms=3)
        ax.set_yticks(pos, order)
        ax.set_xlabel("duration (s)")
        ax.set_title("clip duration per class")
        charts.append(("Durations", _png_data_uri(fig)))
        plt.close(fig)
    return charts


def _table(df: pd.DataFrame, max_rows: int = 200) -> str:
    shown = df.head(max_rows)
    more = f"<p>{len(df) - max_rows} more rows in the CSV.</p>" if len(df) > max_rows else ""
    return shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3g}", border=0, escape=True) + more


def render_html(result: AuditResult, *, title: str = "") -> str:
    """A self-contained HTML page: summary, charts (inline PNG), class table, problem files."""
    f = result.files
    ok = f[f["status"] == "ok"]
    rates = ", ".join(f"{int(k)} Hz: {v}" for k, v in ok["samplerate"].value_counts().sort_index().items())
    chans = ", ".join(f"{int(k)} ch: {v}" for k, v in ok["channels"].value_counts().sort_index().items())
    summary = [
        ("files", len(f)), ("readable", len(ok)), ("failed", result.n_failed),
        ("total duration", f"{ok['duration'].sum() / 3600:.2f} h"), ("sample rates", rates or "-"),
        ("channels", chans or "-"), ("with issues", int((f["issues"].fillna("") != "").sum())),
    ]
    problems = f[(f["status"] != "ok") | (f["issues"].fillna("") != "")]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>spec2img audit {html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;font-size:85%}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}img{max-width:100%}",
        "</style></head><body>",
        f"<h1>Audit of {html.escape(title)}</h1><table>",
        *(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary),
        "</table>",
        *(f"<h2>{name}</h2><img alt='{name}' src='{uri}'>" for name, uri in _charts(result)),
        "<h2>Classes</h2>", _table(result.classes),
        "<h2>Failed files and files with issues</h2>",
        _table(problems) if len(problems) else "<p>None.</p>",
        "</body></html>\n",
    ]
    return "\n".join(parts)
