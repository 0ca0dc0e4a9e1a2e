"""Per-file statistics and per-class counts of an audio folder: the compute half of
:mod:`spec2img.audit` (plain dicts and DataFrames; the HTML page is :mod:`spec2img.audit_page`).
Files are streamed in blocks, so an hour-long recording costs a few MB of memory. An unreadable
file gives a row with ``status="failed"`` and the reason in ``error``; it never stops the audit.

Per-file columns (``audit.csv``): ``path`` (relative to AUDIO_DIR), ``labels`` (';'-joined),
``manually_verified`` and ``fold`` (when a labels CSV gives them), ``duration`` (s, samples actually decoded), ``samplerate``
(Hz), ``channels``, ``format``, ``subtype`` (e.g. PCM_16, FLOAT), ``bits`` (bit depth, empty for
compressed formats), ``peak_dbfs``, ``rms_dbfs`` (over all channels), ``silent_share`` (fraction of
50 ms frames whose RMS is below -60 dBFS), ``clipped`` / ``clipped_share`` (samples with
``|x| >= 0.999``), ``clipped_run`` (longest run of consecutive such samples in one channel),
``dc_offset`` (largest per-channel mean, as a share of full scale), ``nonfinite`` (NaN/Inf
samples), ``issues`` (';'-joined flags, rules in :data:`RULES`), ``status`` (ok / failed), ``error``.

The issue rules (:data:`RULES`, also stated on the page): a peak-normalised clip touches full
scale at one sample and is *not* clipped; clipping is a flat top, ``CLIP_RUN`` or more consecutive
samples at full scale, or more than ``CLIP_SHARE`` of all samples there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import engine_local
from .audio import _unreadable
from .errors import AudioError
from .labels import ClipLabels, folder_labels
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
CLIP_RUN = 3  # this many consecutive samples at full scale in one channel: a clipped (flat) top
CLIP_SHARE = 0.001  # or this share of all samples at full scale
SILENT_PEAK = 1e-6  # no sample above this: digital silence
DC_OFFSET = 0.01  # |mean| of a channel above 1% of full scale (-40 dBFS)

RULES = {
    "clipped": f"{CLIP_RUN}+ consecutive samples at full scale (|x| >= {CLIP_LEVEL}) in one channel (a flat top; "
               f"Audacity's Find Clipping default), or more than {CLIP_SHARE:.1%} of all samples there; a "
               "single full-scale sample (peak-normalised audio) is not clipping",
    "silent": f"no sample above {SILENT_PEAK:g} of full scale (digital silence)",
    "mostly_silent": f"{MOSTLY_SILENT:.0%} or more of its {FRAME_SECONDS * 1000:.0f} ms frames quieter than "
                     f"{SILENT_DBFS:.0f} dBFS (RMS)",
    "dc_offset": f"a channel's mean is above {DC_OFFSET:.0%} of full scale ({20 * np.log10(DC_OFFSET):.0f} dBFS)",
    "nonfinite": "NaN or infinite samples (float files)",
    "short": f"shorter than {SHORT_SECONDS * 1000:.0f} ms",
    "failed": "could not be read (see the error column)",
}

COLUMNS = [
    "path", "labels", "manually_verified", "fold", "duration", "samplerate", "channels", "format", "subtype",
    "bits", "peak_dbfs", "rms_dbfs", "silent_share", "clipped", "clipped_share", "clipped_run", "dc_offset",
    "nonfinite", "issues",
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

    def issue_counts(self) -> dict[str, int]:
        """Files per issue kind (a file can have several), in :data:`RULES` order; ``failed`` too."""
        kinds = [k for cell in self.files["issues"].fillna("") for k in str(cell).split(";") if k]
        counts = {k: kinds.count(k) for k in RULES if k in kinds}
        if self.n_failed:
            counts["failed"] = self.n_failed
        return counts

    def line(self) -> str:
        """One-line summary for the CLI: files, hours, classes, issues by kind, where the page is."""
        f = self.files
        hours = f.loc[f["status"] == "ok", "duration"].sum() / 3600
        with_issues = int(((f["issues"].fillna("") != "") | (f["status"] != "ok")).sum())
        kinds = ", ".join(f"{v} {k}" for k, v in self.issue_counts().items())
        where = f"; page: {self.paths[-1]}" if self.paths else ""
        n_cls = len(self.classes)
        return (f"audited {_plural(len(f), 'file')} ({hours:.2f} h) in {_plural(n_cls, 'class', 'classes')}: "
                f"{_plural(with_issues, 'file')} with issues" + (f" ({kinds})" if kinds else "") + where)


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
        n = peak = sumsq = clipped = nonfinite = silent = frames = longest = 0
        run = np.zeros(ch, dtype=np.int64)  # current full-scale run per channel, carried across blocks
        sums = np.zeros(ch)
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
            at_top = a >= CLIP_LEVEL
            clipped += int(at_top.sum())
            if at_top.any() or run.any():
                longest, run = _longest_runs(at_top, run, longest)
            sums += block.sum(axis=0, dtype=np.float64)
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
        clipped_run=int(longest), dc_offset=float(np.abs(sums / n).max()),
    )
    issues = []
    if peak < SILENT_PEAK:
        issues.append("silent")
    elif row["silent_share"] >= MOSTLY_SILENT:
        issues.append("mostly_silent")
    if longest >= CLIP_RUN or row["clipped_share"] > CLIP_SHARE:
        issues.append("clipped")
    if row["dc_offset"] > DC_OFFSET and peak >= SILENT_PEAK:
        issues.append("dc_offset")
    if nonfinite:
        issues.append("nonfinite")
    if row["duration"] < SHORT_SECONDS:
        issues.append("short")
    row["issues"] = ";".join(issues)
    return row


def _longest_runs(at_top: np.ndarray, run: np.ndarray, longest: int) -> tuple[int, np.ndarray]:
    """Longest run of True down each column of ``at_top`` [shape=(n, ch)], continuing the runs
    ``run`` [shape=(ch,)] open at the end of the previous block; returns (longest, open runs)."""
    run = run.copy()
    for c in range(at_top.shape[1]):
        x = at_top[:, c]
        if not x.any():
            run[c] = 0
            continue
        edges = np.flatnonzero(np.diff(np.r_[0, x.astype(np.int8), 0]))
        starts, ends = edges[::2], edges[1::2]
        lengths = ends - starts
        if starts[0] == 0:
            lengths[0] += run[c]
        longest = max(longest, int(lengths.max()))
        run[c] = lengths[-1] if ends[-1] == len(x) else 0
    return longest, run


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
    if jobs > 1 and len(paths) > 1:  # a worker that dies (kill -9, OOM) fails only its file
        results = engine_local.run_jobs(paths, file_stats, min(jobs, len(paths)), lost=_lost_stats)
        try:
            stats = list(results)
        finally:
            engine_local.close(results)
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
    for col in ("samplerate", "channels", "bits", "clipped", "clipped_run", "nonfinite", "manually_verified", "fold"):
        df[col] = df[col].astype("Int64")
    return df


def _lost_stats(path: Path, message: str) -> dict:
    return {"status": "failed", "error": f"{path}: {message}"}


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


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
