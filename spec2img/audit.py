"""Audit an audio folder before converting it: per-file statistics, per-class counts, an HTML page.

Compute first (:mod:`spec2img.audit_stats`: :func:`file_stats`, :func:`audit_table`,
:func:`class_table`), write second (:func:`write_audit`: ``audit.csv``, ``audit_classes.csv`` and
``audit.html`` from :mod:`spec2img.audit_page`). :func:`audit` does both; ``spec2img audit`` calls it.
The columns of ``audit.csv`` and the issue rules are described in :mod:`spec2img.audit_stats`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .audit_page import render_html
from .audit_stats import (COLUMNS, FRAME_SECONDS, FRAMES_PER_BLOCK, RULES, AuditResult, audit_table,
                          class_table, file_stats)
from .errors import AudioError
from .io import sheet_table, write_atomic
from .labels import read_labels_csv
from .paths import walk_audio

__all__ = ["COLUMNS", "FRAMES_PER_BLOCK", "FRAME_SECONDS", "RULES", "AuditResult", "audit", "audit_table",
           "class_table", "file_stats", "render_html", "write_audit"]

log = logging.getLogger(__name__)


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
    missing: str = "error",
) -> AuditResult:
    """Audit ``audio_dir``; with ``out_dir`` also write ``audit.csv``, ``audit_classes.csv`` and a
    self-contained ``audit.html`` (inline PNG charts, no network) there.

    Labels come from ``labels_csv`` (any layout :func:`spec2img.labels.read_labels_csv` knows,
    or the explicit ``*_col`` names; ``missing``: its rows naming absent files stop the audit or
    are skipped) or else from the folder-per-class layout.
    """
    audio_dir = Path(audio_dir)
    labels = None
    if labels_csv is not None:
        if not audio_dir.is_dir():
            raise AudioError(f"{audio_dir}: not a folder; pass the folder that holds the audio files")
        listed = [e.path for e in walk_audio(audio_dir, follow_symlinks=follow_symlinks)]
        rel = read_labels_csv(labels_csv, audio_dir, listed, file_col=file_col,
                              label_col=label_col, fold_col=fold_col, missing=missing)
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
