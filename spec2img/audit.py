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
``|x| >= 0.999``), ``clipped_run`` (longest run of consecutive such samples in one channel),
``dc_offset`` (largest per-channel mean, as a share of full scale), ``nonfinite`` (NaN/Inf
samples), ``issues`` (';'-joined flags, rules in :data:`RULES`), ``status`` (ok / failed), ``error``.

The issue rules (:data:`RULES`, also stated on the page): a peak-normalised clip touches full
scale at one sample and is *not* clipped; clipping is a flat top, ``CLIP_RUN`` or more consecutive
samples at full scale, or more than ``CLIP_SHARE`` of all samples there.
"""

from __future__ import annotations

import base64
import html
import io
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
from .io import asset_text, sheet_table, write_atomic
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
    write_atomic(paths[0], sheet_table(result.files).to_csv(index=False).encode())
    write_atomic(paths[1], sheet_table(result.classes).to_csv(index=False).encode())
    write_atomic(paths[2], render_html(result, title=title).encode())
    return paths


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _charts(result: AuditResult) -> list[tuple[str, str, str]]:
    """(anchor, title, html) of each chart the data calls for: files per class when there are
    several classes; a duration histogram when durations vary, one sentence when they do not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    cl = result.classes
    ok = result.files[result.files["status"] == "ok"]
    with plt.rc_context({"text.parse_math": False, "text.usetex": False}):  # "$x$" in a label is text
        if len(cl) > 1:
            fig, ax = plt.subplots(figsize=(7, 0.22 * len(cl) + 1.0))
            ax.barh(np.arange(len(cl)), cl["files"].to_numpy()[::-1], color="#4c72b0")
            ax.set_yticks(np.arange(len(cl)), [str(x) for x in cl["label"][::-1]], fontsize=7 if len(cl) > 40 else 8)
            ax.set_xlabel("files")
            ax.grid(axis="x", alpha=0.3)
            charts.append(("class-chart", "Files per class",
                           f'<img alt="files per class" src="{_png_data_uri(fig)}">'))
            plt.close(fig)
        d = ok["duration"].to_numpy(float)
        if len(d) and d.max() - d.min() >= 0.01:
            fig, ax = plt.subplots(figsize=(7, 2.8))
            ax.hist(d, bins=min(50, max(5, int(np.sqrt(len(d))))), color="#55a868")
            ax.set_xlabel("duration (s)")
            ax.set_ylabel("files")
            ax.grid(alpha=0.3)
            text = (f"<p>From {_num(d.min())} s to {_num(d.max())} s, median {_num(float(np.median(d)))} s.</p>"
                    f'<img alt="duration histogram" src="{_png_data_uri(fig)}">')
            plt.close(fig)
            charts.append(("durations", "Durations", text))
        elif len(d):
            charts.append(("durations", "Durations",
                           f"<p>All {_plural(len(d), 'readable file')} last {_num(float(d[0]))} s.</p>"))
    return charts


def _num(v) -> str:
    """A number as people write it (15000, 0.25, 3e-5), '' for a missing value: never <NA> or nan."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == int(v) and abs(v) < 1e15:
            return str(int(v))
        if abs(v) >= 1e-3:
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        mant, exp = f"{v:.1e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return str(v)


def _esc(v) -> str:
    return html.escape(_num(v), quote=True)


def _data_table(df: pd.DataFrame, table_id: str, *, headers: dict[str, str] | None = None,
                row_attr=None) -> str:
    """A sortable table (numbers carry data-v), every cell escaped, missing values blank."""
    headers = headers or {}
    cols = list(df.columns)
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}
    head = "".join(f'<th data-col="{k}" data-num="{int(numeric[c])}">{html.escape(headers.get(c, c))}</th>'
                   for k, c in enumerate(cols))
    rows = []
    for r, row in enumerate(df.itertuples(index=False)):
        tds = []
        for c, v in zip(cols, row):
            if numeric[c]:
                missing = v is pd.NA or v is None or (isinstance(v, float) and np.isnan(v))
                dv = "" if missing else f"{float(v):.6g}"
                tds.append(f'<td data-v="{dv}">{_esc(v)}</td>')
            else:
                tds.append(f'<td class="t">{_esc(v)}</td>')
        attrs = row_attr(r) if row_attr else ""
        rows.append(f"<tr{attrs}>{''.join(tds)}</tr>")
    return (f'<div class="table-wrap"><table id="{table_id}" class="data sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _kv(pairs) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def render_html(result: AuditResult, *, title: str = "") -> str:
    """A self-contained page in the report's look: summary with issue counts, the rules, charts the
    data calls for, per-class counts with verified share, a sortable/filterable table of files with
    issues. No network; opened from disk."""
    f = result.files
    ok = f[f["status"] == "ok"]
    rates = ", ".join(f"{int(k)} Hz: {v}" for k, v in ok["samplerate"].value_counts().sort_index().items())
    chans = ", ".join(f"{int(k)} ch: {v}" for k, v in ok["channels"].value_counts().sort_index().items())
    counts = result.issue_counts()
    summary = [
        ("files", len(f)), ("readable", len(ok)), ("failed", result.n_failed),
        ("total duration", f"{ok['duration'].sum() / 3600:.2f} h"), ("sample rates", rates or "none"),
        ("channels", chans or "none"),
        ("with issues", int(((f["issues"].fillna("") != "") | (f["status"] != "ok")).sum())),
    ]
    tiles = "".join(f'<div class="metric"><div class="value">{v}</div><div class="name">{html.escape(k)}</div></div>'
                    for k, v in counts.items()) or '<p>No issues found.</p>'
    rules = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in RULES.items())
    sections = [("summary", "Summary", f'<div class="metrics">{tiles}</div>{_kv(summary)}'),
                ("rules", "Rules", f'<p class="hint">How each issue is decided.</p><table class="kv rules">{rules}</table>')]
    charts = _charts(result)
    sections += [(a, t, body) for a, t, body in charts]
    cl = result.classes.copy()
    headers = {"total_duration": "total (s)", "median_duration": "median (s)", "min_duration": "min (s)",
               "max_duration": "max (s)", "verified_share": "verified share"}
    sections.append(("classes", "Classes", _data_table(cl, "class-table", headers=headers)))
    problems = f[(f["status"] != "ok") | (f["issues"].fillna("") != "")].copy()
    if len(problems):
        problems["issues"] = [";".join([x for x in str(i).split(";") if x] + ([str(st)] if st != "ok" else []))
                              for i, st in zip(problems["issues"].fillna(""), problems["status"])]
        cols = [c for c in ("path", "labels", "issues", "duration", "peak_dbfs", "rms_dbfs", "silent_share",
                            "clipped_run", "clipped_share", "dc_offset", "samplerate", "channels", "error")
                if c in problems and (c != "error" or problems[c].fillna("").astype(str).ne("").any())]
        problems = problems.round({"peak_dbfs": 1, "rms_dbfs": 1, "silent_share": 3, "clipped_share": 5,
                                   "dc_offset": 4, "duration": 3})
        options = "".join(f'<option value="{html.escape(k)}">{html.escape(k)} ({v})</option>' for k, v in counts.items())
        issue_html = ('<div class="filters"><label>issue <select id="issue-kind"><option value="">all</option>'
                      f'{options}</select></label> <label>file or label <input type="search" id="issue-text" '
                      'placeholder="filter…"></label> <span id="issue-count" class="hint"></span></div>'
                      '<p class="hint">Click a header to sort.</p>'
                      + _data_table(problems[cols].reset_index(drop=True), "issue-table",
                                    row_attr=lambda r, p=problems: f' data-issues="{html.escape(str(p["issues"].iloc[r]))}"'))
    else:
        issue_html = "<p>No file has an issue.</p>"
    sections.append(("issues", "Files with issues", issue_html))
    nav = "<!--report-nav-->" + "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "\n".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>\n{b}\n</section>' for a, t, b in sections)
    name = html.escape(title)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>spec2img audit: {name}</title>\n<link rel="icon" href="data:,">\n<style>{AUDIT_CSS}</style>\n'
            f"</head>\n<body>\n<header>\n<h1>Audit of {name}</h1>\n<nav>{nav}</nav>\n</header>\n<main>\n{body}\n</main>\n"
            f"<script>{asset_text('sortable.js')}</script>\n<script>{AUDIT_JS}</script>\n</body>\n</html>\n")


# the report's look (classify/report/assets/report.css), inlined so the page is one file
AUDIT_CSS = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #dde2e8; --bg: #f6f8fa; --accent: #2563b1; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--line); padding: 8px 24px; }
header h1 { font-size: 18px; margin: 0 0 4px; overflow-wrap: anywhere; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; font-weight: 500; }
nav a:hover { text-decoration: underline; }
main { max-width: 1280px; margin: 0 auto; padding: 8px 24px 80px; overflow-wrap: anywhere; }
section { padding: 8px 0 16px; border-bottom: 1px solid var(--line); scroll-margin-top: 70px; }
h2 { font-size: 20px; margin: 16px 0 8px; }
.hint { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
.metrics { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0; }
.metric { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 10px 18px; min-width: 120px; }
.metric .value { font-size: 26px; font-weight: 600; }
.metric .name { color: var(--muted); }
table { border-collapse: collapse; font-size: 13px; }
table.kv th { text-align: left; font-weight: 500; color: var(--muted); padding: 2px 12px 2px 0; vertical-align: top; white-space: nowrap; }
table.kv td { padding: 2px 0; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table.data { margin: 6px 0; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
table.data th[data-num="0"], table.data td.t { text-align: left; }
table.data td.t { max-width: 420px; overflow-wrap: anywhere; }
table.data td.t:first-child { min-width: 12em; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; background: #fff; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; }
.filters { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin: 6px 0; }
.filters input, .filters select { font: inherit; padding: 3px 6px; border: 1px solid var(--line); border-radius: 4px; }
img { max-width: 100%; border: 1px solid var(--line); }
"""

AUDIT_JS = """
(function () {
  'use strict';
  var kind = document.getElementById('issue-kind'), text = document.getElementById('issue-text');
  var table = document.getElementById('issue-table'), count = document.getElementById('issue-count');
  function filter() {
    if (!table) return;
    var k = kind.value, q = text.value.trim().toLowerCase(), shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i], issues = (r.dataset.issues || '').split(';');
      var ok = (!k || issues.indexOf(k) >= 0) && (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.hidden = !ok;
      if (ok) shown++;
    }
    count.textContent = shown + ' of ' + rows.length + (rows.length === 1 ? ' file' : ' files');
  }
  if (kind) { kind.addEventListener('change', filter); text.addEventListener('input', filter); filter(); }
  document.documentElement.classList.add('ready');
})();
"""
