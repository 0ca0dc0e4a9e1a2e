"""``build_report``: run folder -> ``report/index.html`` + assets. Computes first, plots second,
assembles last; never trains. t-SNE coordinates are cached in ``report/cache/`` for fast rebuilds."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from spec2img.io import asset_text, sheet_table, write_atomic

from ..errors import ClassifyError
from ..scoring import metrics
from ..scoring.suspects import suspect_table
from . import compute, media
from . import html as H
from . import sections as S
from .load import RunData, load_run, prediction_arrays

log = logging.getLogger(__name__)


class ReportError(ClassifyError):
    """The report would be worse than the one it replaces (exit code 2, nothing overwritten)."""

AUDIO_MODES = ("copy", "link", "none")


@dataclass(frozen=True)
class ReportConfig:
    """What goes into the page and how big it may get.

    ``top_n`` worst items listed, ``max_per_cell`` clips kept per confusion cell, ``max_pairs``
    most-confused pairs listed, ``audio`` copy / link / none, ``max_audio_mb`` copy budget (clips
    beyond it get no player; priority: top losses, confused cells, correct cells, the rest),
    ``tsne`` on/off, ``seed`` for t-SNE. ``force``: replace an existing report even when this build
    finds no thumbnails or no audio where the existing one had them (otherwise that is an error).
    """

    top_n: int = 50
    max_per_cell: int = 12
    max_pairs: int = 30
    audio: str = "copy"
    max_audio_mb: float = 100.0
    tsne: bool = True
    seed: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        if self.audio not in AUDIO_MODES:
            raise ClassifyError(f"audio={self.audio!r} must be one of {', '.join(AUDIO_MODES)}")
        for name in ("top_n", "max_per_cell", "max_pairs"):
            if int(getattr(self, name)) < 1:
                raise ClassifyError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.max_audio_mb < 0:
            raise ClassifyError(f"max_audio_mb={self.max_audio_mb} must be >= 0")


def build_report(run_dir, *, out_dir=None, images_dir=None, audio_dir=None,
                 config: ReportConfig | None = None) -> Path:
    """Write the HTML report of ``run_dir`` into ``out_dir`` (default ``run_dir/report``).

    Returns the path of ``index.html``. ``images_dir`` / ``audio_dir`` override the folders the run
    records (thumbnails and audio players need them; without them the page says so).
    """
    cfg = config or ReportConfig()
    t0 = time.perf_counter()
    run = load_run(Path(run_dir), images_dir=images_dir, audio_dir=audio_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ("report.js", "report.css"):
        write_atomic(out / "assets" / name, H.asset_text(name).encode())
    write_atomic(out / "assets" / "sortable.js", asset_text("sortable.js").encode())  # spec2img's

    notes = list(run.notes)
    data: dict = {"classes": run.classes, "multi_label": run.multi_label}

    # ---- compute: the headline per clip (mean of its windows' probabilities), as fit scores it
    clip_p, clip_t, clip_y = compute.clip_level(run.probs, run.truth, run.preds["source"])
    threshold = run.threshold  # fit's multi-label threshold (0.5 when none recorded)
    headline = metrics.headline(clip_p, clip_t, multi_label=run.multi_label, threshold=threshold)
    per_window = metrics.headline(run.probs, run.truth, multi_label=run.multi_label, threshold=threshold)
    explain = S.headline_text(run, headline, per_window, len(clip_y))
    cover = run.cv_metrics.get("coverage") or {}
    if cover.get("partial"):  # degenerate folds: the first thing the page and the summary say
        notes.insert(0, f"Read this first: {cover.get('warning', '')}")
        explain = f"{cover.get('prefix', '')}{explain}"
    leaks = [m.get("leak") for m in [run.metrics, *(f.metrics for f in run.folds)] if isinstance(m.get("leak"), dict)]
    leaky = [x for x in leaks if x.get("leaky")]
    if leaky:  # probably leaky split: said before anything else
        where = f" ({len(leaky)} of {len(leaks)} folds)" if run.is_cv else ""
        notes.insert(0, f"Read this first{where}: {leaky[0].get('line', '')}")
    elif leaks:
        notes.append(f"Leak check: {leaks[0].get('line', '')}")
    if cover.get("n_unverified_unscored"):
        notes.append(f"{cover['n_unverified_unscored']} unverified clip(s) were predicted out-of-fold but not scored; "
                     "the run folder's suspect_labels.csv ranks them with the others")
    log.info("%s", explain)
    suspects = _suspects(run)
    spread = _fold_spread(run, notes)
    table = compute.per_class_table(run.classes, run.probs, run.truth, run.y, run.pred, run.multi_label)
    top = compute.top_losses(run.loss, cfg.top_n)
    cm = cells = pairs = None
    if not run.multi_label:
        cm = metrics.confusion(run.y, run.pred, len(run.classes))
        cells = compute.cell_items(run.y, run.pred, run.loss, cfg.max_per_cell)
        pairs = compute.most_confused(cm, run.classes, top=cfg.max_pairs)
    tsne = _tsne_views(run, out, cfg) if cfg.tsne else {}

    # ---- media for the rows the page references
    suspect_rows = [] if suspects is None else suspects["row"].head(cfg.top_n).tolist()
    shown = list(dict.fromkeys(suspect_rows + _rows_by_priority(run, top, cells, pairs)))
    thumb_rows = list(dict.fromkeys(suspect_rows + list(top) + [r for c in (cells or {}).values() for r in c]))
    thumbs = media.write_thumbnails({r: _image_path(run, r) for r in thumb_rows}, out)
    if run.images_dir is not None and thumb_rows and not thumbs:
        notes.append(f"no spectrogram images found under {run.images_dir}: no thumbnails")
    audio_of_row = {r: _audio_path(run, r) for r in shown}
    placed, audio_bytes = media.place_audio(
        [p for p in audio_of_row.values() if p is not None], out,
        mode=cfg.audio if run.audio_dir is not None else "none", budget_bytes=int(cfg.max_audio_mb * 2**20))
    audio = {r: placed[p] for r, p in audio_of_row.items() if p in placed}
    if run.audio_dir is not None and cfg.audio == "copy" and len(audio) < len(shown):
        missing = sum(1 for p in audio_of_row.values() if p is None or not p.is_file())
        if missing:
            notes.append(f"{missing} of {len(shown)} validation items have no audio file under {run.audio_dir}")
        over = len(shown) - len(audio) - missing
        if over > 0:
            notes.append(f"{over} items over the {cfg.max_audio_mb:g} MB audio budget have no player "
                         "(raise --max-audio-mb or use --audio link)")
    index = out / "index.html"
    _refuse_poorer(index, len(thumbs), len(audio), cfg, run)

    data["items"] = _items_json(run, thumbs, audio)
    data["top"] = [int(r) for r in top]
    if cm is not None:
        data["cm"] = cm.tolist()
        data["cells"] = {f"{i},{j}": rows for (i, j), rows in cells.items()}
    data["tsne"] = tsne
    csv_href = None
    if suspects is not None:
        data["suspects"] = _suspects_json(run, suspects.head(cfg.top_n))
        cols = ["file", "given", "suggested", "score"]
        write_atomic(out / "suspect_labels.csv", sheet_table(suspects[cols]).to_csv(index=False).encode())
        csv_href = "suspect_labels.csv"

    # ---- plots and sections
    sections = [
        ("summary", "Summary", S.summary_html(run, headline, spread, explain)),
        ("headfit", "Head-only fit", S.head_only_html(run)) if run.head_only else
        ("training", "Training", S.training_html(run, out)),
        ("classes", "Per class", S.per_class_html(table, run.multi_label)),
        ("confusion", "Confusion", S.confusion_html(run, pairs, cfg.max_per_cell)),
        ("losses", "Top losses", S.top_losses_html(len(top))),
        *([("suspects", "Suspect labels", S.suspects_html(
            len(suspects), int(run.preds["source"].nunique()), min(cfg.top_n, len(suspects)),
            _unverified(run, suspects), csv_href))] if suspects is not None else []),
        ("tsne", "t-SNE", S.tsne_html(tsne)),
        ("dataset", "Dataset", S.dataset_html(run, out)),
    ]

    title = f"classify report: {run.run_dir.resolve().name}"
    write_atomic(index, H.page(title, sections, notes, data).encode())  # last: a full disk keeps the old page
    media.prune(out, set(thumbs.values()) | (set(audio.values()) if cfg.audio == "copy" else set()))
    log.info("report: %s (%d items, %d thumbnails, %d audio files / %.1f MB copied, %d items playable) in %.1f s",
             index, run.n, len(thumbs), len(set(audio.values())), audio_bytes / 2**20, len(audio),
             time.perf_counter() - t0)
    return index


# ------------------------------------------------------------------------------------- helpers
def _suspects(run: RunData) -> pd.DataFrame | None:
    """Suspect labels of a single-label cv run (out-of-fold predictions), with each clip's first
    row in ``row``; None where they are not defined (single runs, multi-label runs)."""
    if not run.is_cv or run.multi_label:
        return None
    table = suspect_table(run.preds, run.classes)
    first = {}
    for r, src in enumerate(run.preds["source"].astype(str)):
        first.setdefault(src, r)
    return table.assign(row=[first[f] for f in table["file"]])


def _suspects_json(run: RunData, table: pd.DataFrame) -> list[dict]:
    index = {c: i for i, c in enumerate(run.classes)}
    probs = table[[f"p_{c}" for c in run.classes]].to_numpy()
    verified = _verified_of(run)
    out = []
    # plain columns, never namedtuples: p_<label> columns of two labels can be one identifier
    # (NFC/NFD forms of a name, keywords), which itertuples turns into a SyntaxError
    cols = zip(table["row"], table["given"], table["suggested"], table["score"], table["file"])
    for k, (row, given, suggested, score, file) in enumerate(cols):
        order = np.argsort(-probs[k])[:3]
        out.append({"r": int(row), "g": index[given], "s": index[suggested],
                    "score": round(float(score), 3),
                    "top": [[int(j), round(float(probs[k, j]), 3)] for j in order],
                    "v": verified.get(file)})
    return out


def _verified_of(run: RunData) -> dict:
    m = run.manifest
    if m is None or "manually_verified" not in m or "source" not in m:
        return {}
    v = pd.to_numeric(m["manually_verified"], errors="coerce")
    return {str(s): int(x) for s, x in zip(m["source"], v) if not np.isnan(x)}


def _unverified(run: RunData, table: pd.DataFrame) -> int | None:
    """How many suspects are not manually verified; None where the manifest does not say."""
    verified = _verified_of(run)
    if not verified:
        return None
    return int(sum(1 for f in table["file"] if verified.get(f) == 0))


def _media_counts(index: Path) -> tuple[int, int] | None:
    """(thumbnails, audio players) of an existing report page, None when there is none."""
    if not index.is_file():
        return None
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                  index.read_text(encoding="utf-8", errors="replace"), re.S)
    try:
        items = json.loads(m.group(1).replace("<\\/", "</"))["items"] if m else {}
        return len(items.get("thumb", {})), len(items.get("audio", {}))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _refuse_poorer(index: Path, n_thumbs: int, n_audio: int, cfg: ReportConfig, run: RunData) -> None:
    """Never replace a report that shows spectrograms / plays audio with one that cannot (the
    images or audio folder was not found from here) unless ``cfg.force``."""
    old = _media_counts(index)
    if old is None or cfg.force:
        return
    lost = []
    if old[0] > 0 and n_thumbs == 0:
        lost.append(f"{old[0]} spectrogram thumbnails (images folder: {run.images_dir or 'not found'})")
    if old[1] > 0 and n_audio == 0 and cfg.audio != "none":
        lost.append(f"{old[1]} audio players (audio folder: {run.audio_dir or 'not found'})")
    if lost:
        raise ReportError(f"{index} not replaced: it has {' and '.join(lost)}, this build would have none; "
                          "pass --images-dir / --audio-dir, or --force to replace it anyway")


def _fold_spread(run: RunData, notes: list[str]) -> pd.DataFrame | None:
    """Headline metrics per fold (from the oof rows of each fold, else the fold's own predictions,
    else its metrics.json), summarised as mean and std; None for a single run."""
    if not run.is_cv:
        return None
    per_fold = []
    for fd in run.folds:
        if fd.preds is not None and len(fd.preds):
            sub = None
            if "fold" in run.preds:  # oof rows of this fold; the column may hold "fold_k" or k
                fold = run.preds["fold"].astype(str)
                sub = ((fold == fd.name) | ("fold_" + fold == fd.name)).to_numpy()
            if sub is not None and sub.any():
                per_fold.append(metrics.headline(run.probs[sub], run.truth[sub], multi_label=run.multi_label,
                                                 threshold=run.threshold))
                continue
            try:
                probs, truth, _ = prediction_arrays(fd.preds, run.classes, run.run_dir / fd.name, [])
                per_fold.append(metrics.headline(probs, truth, multi_label=run.multi_label,
                                                 threshold=run.threshold))
                continue
            except ClassifyError as exc:
                notes.append(f"{fd.name}: {exc}")
        if fd.metrics:
            per_fold.append({k: v for k, v in fd.metrics.items() if isinstance(v, (int, float))})
    return compute.fold_spread(per_fold) if per_fold else None


def _image_path(run: RunData, row: int) -> Path | None:
    img = run.preds.at[row, "image"]
    if run.images_dir is None or not isinstance(img, str) or not img:
        return None
    return run.images_dir / img


def _audio_path(run: RunData, row: int) -> Path | None:
    src = run.preds.at[row, "source"]
    if run.audio_dir is None or not isinstance(src, str) or not src:
        return None
    return run.audio_dir / src


def _rows_by_priority(run: RunData, top, cells, pairs) -> list[int]:
    """Rows whose audio the page may play, most useful first (the copy budget cuts the tail)."""
    rows = [int(r) for r in top]
    if cells:
        if pairs is not None:
            for i, j in zip(pairs["i"], pairs["j"]):
                rows += cells.get((int(i), int(j)), [])
        rows += [r for (i, j), rs in cells.items() if i != j for r in rs]
        rows += [r for (i, j), rs in cells.items() if i == j for r in rs]
    rows += list(compute.top_losses(run.loss, run.n))  # t-SNE clicks: everything, worst first
    return list(dict.fromkeys(rows))


def _items_json(run: RunData, thumbs: dict[int, str], audio: dict[int, str]) -> dict:
    windows = compute.time_windows(run.offset, run.window_seconds)
    if run.multi_label:
        y = [np.flatnonzero(t).tolist() for t in run.truth]
    else:
        y = run.y.tolist()
    rows = np.arange(run.n)
    p_true = run.probs[rows, np.maximum(run.y, 0)]
    return {
        "src": run.preds["source"].fillna("").astype(str).tolist(),
        "y": y,
        "p": run.pred.tolist(),
        "pp": np.round(run.probs[rows, run.pred], 3).tolist(),
        **({"pl": [np.flatnonzero(p >= 0.5).tolist() for p in run.probs]} if run.multi_label else {}),
        "pt": np.round(p_true, 3).tolist(),
        "loss": np.round(run.loss, 4).tolist(),
        "win": [None if w is None else [round(w[0], 3), round(w[1], 3)] for w in windows],
        "thumb": {str(r): quote(h) for r, h in thumbs.items()},
        "audio": {str(r): quote(h) for r, h in audio.items()},
    }


def _tsne_views(run: RunData, out: Path, cfg: ReportConfig) -> dict[str, list[list[int]]]:
    """{"embeddings": [xs, ys], "probabilities": [xs, ys]} with coordinates as ints in 0..1000."""
    from spec2img.progress import Progress

    views = {}
    sources = [(name, x) for name, x in (("embeddings", run.embeddings), ("probabilities", run.probs))
               if x is not None]
    bar = Progress(len(sources), unit="view", desc="t-SNE", every=0.0, min_items=1, logger=log)
    for name, x in sources:
        key = hashlib.sha1(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()[:16]
        cache = out / "cache" / f"tsne-{name}-{key}-s{cfg.seed}.npy"
        if cache.is_file():
            xy = np.load(cache)
        else:
            t0 = time.perf_counter()
            xy = compute.tsne_2d(x, seed=cfg.seed)
            log.info("t-SNE of %s %s: %.1f s", name, x.shape, time.perf_counter() - t0)
            if cache.parent.is_dir():
                for old in cache.parent.glob(f"tsne-{name}-*.npy"):
                    old.unlink()
            buf = io.BytesIO()
            np.save(buf, xy)
            write_atomic(cache, buf.getvalue())
        views[name] = np.round(xy * 1000).astype(int).T.tolist()
        bar.update()
    bar.close()
    return views
