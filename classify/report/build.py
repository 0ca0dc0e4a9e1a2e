"""``build_report``: run folder -> ``report/index.html`` + assets. Computes first, plots second,
assembles last; never trains. t-SNE coordinates are cached in ``report/cache/`` for fast rebuilds."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import metrics
from ..errors import ClassifyError
from . import compute, media, plots
from . import html as H
from .load import RunData, load_run, split_labels

log = logging.getLogger(__name__)

AUDIO_MODES = ("copy", "link", "none")


@dataclass(frozen=True)
class ReportConfig:
    """What goes into the page and how big it may get.

    ``top_n`` worst items listed, ``max_per_cell`` clips kept per confusion cell, ``max_pairs``
    most-confused pairs listed, ``audio`` copy / link / none, ``max_audio_mb`` copy budget (clips
    beyond it get no player; priority: top losses, confused cells, correct cells, the rest),
    ``tsne`` on/off, ``seed`` for t-SNE.
    """

    top_n: int = 50
    max_per_cell: int = 12
    max_pairs: int = 30
    audio: str = "copy"
    max_audio_mb: float = 100.0
    tsne: bool = True
    seed: int = 0

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
        (out / "assets" / name).write_text(H.asset_text(name), encoding="utf-8")

    notes = list(run.notes)
    data: dict = {"classes": run.classes, "multilabel": run.multilabel}
    sections: list[tuple[str, str, str]] = []

    # ---- compute
    headline = compute.headline_metrics(run.probs, run.truth, run.y, run.multilabel)
    spread = _fold_spread(run)
    table = compute.per_class_table(run.classes, run.probs, run.truth, run.y, run.pred, run.multilabel)
    top = compute.top_losses(run.loss, cfg.top_n)
    cm = cells = pairs = None
    if not run.multilabel:
        cm = metrics.confusion(run.y, run.pred, len(run.classes))
        cells = compute.cell_items(run.y, run.pred, run.loss, cfg.max_per_cell)
        pairs = compute.most_confused(cm, run.classes, top=cfg.max_pairs)
    tsne = _tsne_views(run, out, cfg) if cfg.tsne else {}

    # ---- media for the rows the page references
    shown = _rows_by_priority(run, top, cells, pairs)
    thumb_rows = list(dict.fromkeys(list(top) + [r for c in (cells or {}).values() for r in c]))
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
    media.prune(out, set(thumbs.values()) | (set(audio.values()) if cfg.audio == "copy" else set()))

    data["items"] = _items_json(run, thumbs, audio)
    data["top"] = [int(r) for r in top]
    if cm is not None:
        data["cm"] = cm.tolist()
        data["cells"] = {f"{i},{j}": rows for (i, j), rows in cells.items()}
    data["tsne"] = tsne

    # ---- plots and sections
    sections.append(("summary", "Summary", _summary_html(run, headline, spread)))
    sections.append(("training", "Training", _training_html(run, out)))
    sections.append(("classes", "Per class", _per_class_html(table, run.multilabel)))
    sections.append(("confusion", "Confusion", _confusion_html(run, pairs, cfg)))
    sections.append(("losses", "Top losses", _top_losses_html(len(top))))
    sections.append(("tsne", "t-SNE", _tsne_html(tsne)))
    sections.append(("dataset", "Dataset", _dataset_html(run, out)))

    title = f"classify report: {run.run_dir.resolve().name}"
    index = out / "index.html"
    index.write_text(H.page(title, sections, notes, data), encoding="utf-8")
    log.info("report: %s (%d items, %d thumbnails, %d clips / %.1f MB audio) in %.1f s",
             index, run.n, len(thumbs), len(audio), audio_bytes / 2**20, time.perf_counter() - t0)
    return index


# ------------------------------------------------------------------------------------- helpers
def _fold_spread(run: RunData) -> pd.DataFrame | None:
    if not run.is_cv:
        return None
    per_fold = []
    for fd in run.folds:
        if fd.preds is not None and len(fd.preds):
            sub = run.preds["fold"].astype(str) == fd.name if "fold" in run.preds else None
            if sub is not None and sub.any():
                per_fold.append(compute.headline_metrics(run.probs[sub], run.truth[sub], run.y[sub], run.multilabel))
                continue
            try:
                from .load import _prediction_arrays

                probs, truth, _ = _prediction_arrays(fd.preds, run.classes, run.run_dir / fd.name, [])
                y = np.argmax(truth, axis=1)
                per_fold.append(compute.headline_metrics(probs, truth, y, run.multilabel))
                continue
            except ClassifyError as exc:
                run.notes.append(f"{fd.name}: {exc}")
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
    if run.multilabel:
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
        **({"pl": [np.flatnonzero(p >= 0.5).tolist() for p in run.probs]} if run.multilabel else {}),
        "pt": np.round(p_true, 3).tolist(),
        "loss": np.round(run.loss, 4).tolist(),
        "win": [None if w is None else [round(w[0], 3), round(w[1], 3)] for w in windows],
        "thumb": {str(r): quote(h) for r, h in thumbs.items()},
        "audio": {str(r): quote(h) for r, h in audio.items()},
    }


def _tsne_views(run: RunData, out: Path, cfg: ReportConfig) -> dict[str, list[list[int]]]:
    """{"embeddings": [xs, ys], "probabilities": [xs, ys]} with coordinates as ints in 0..1000."""
    views = {}
    sources = (("embeddings", run.embeddings), ("probabilities", run.probs))
    for name, x in sources:
        if x is None:
            continue
        key = hashlib.sha1(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()[:16]
        cache = out / "cache" / f"tsne-{name}-{key}-s{cfg.seed}.npy"
        if cache.is_file():
            xy = np.load(cache)
        else:
            t0 = time.perf_counter()
            xy = compute.tsne_2d(x, seed=cfg.seed)
            log.info("t-SNE of %s %s: %.1f s", name, x.shape, time.perf_counter() - t0)
            cache.parent.mkdir(exist_ok=True)
            for old in cache.parent.glob(f"tsne-{name}-*.npy"):
                old.unlink()
            np.save(cache, xy)
        views[name] = np.round(xy * 1000).astype(int).T.tolist()
    return views


# ------------------------------------------------------------------------------------ sections
def _summary_html(run: RunData, headline: dict, spread) -> str:
    sources = run.preds["source"].astype(str)
    dataset = {"validation items": run.n, "validation clips": int(sources.nunique()),
               "classes": len(run.classes), "task": "multi-label" if run.multilabel else "single-label"}
    m = run.manifest
    if m is not None and len(m):
        ok = m[m["status"].astype(str) == "ok"] if "status" in m else m
        dataset["clips in images folder"] = len(ok)
        if len(ok) > sources.nunique():
            dataset["other (training) clips"] = len(ok) - int(sources.nunique())
        if "manually_verified" in ok:
            mv = pd.to_numeric(ok["manually_verified"], errors="coerce").dropna()
            if len(mv):
                dataset["verified share"] = float(mv.mean())
    for key in ("n_train", "n_valid", "valid_pct", "split", "fold", "valid_fold"):
        if key in run.train:
            dataset[key] = run.train[key]
    if run.is_cv:
        dataset["folds"] = len(run.folds)
    spec_keys = ("preset", "feature", "sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "mode",
                 "duration", "crop", "tile", "tile_hop")
    spec = {k: run.spectrogram[k] for k in spec_keys if k in run.spectrogram}
    train = {k: v for k, v in run.train.items() if not isinstance(v, (dict,)) or len(str(v)) < 200}
    recorded = {k: v for k, v in run.metrics.items() if isinstance(v, (int, float))}
    parts = [H.metrics_table(headline, spread),
             '<p class="hint">Computed from the validation predictions'
             + (" (out-of-fold for this cv run; ± is the spread across folds)" if run.is_cv else "") + ".</p>",
             '<div class="cols">',
             f"<div><h3>Dataset</h3>{H.key_value_table(dataset)}</div>",
             f"<div><h3>Spectrogram</h3>{H.key_value_table(spec) if spec else '<p>spectrogram.json missing</p>'}</div>",
             f"<div><h3>Training</h3>{H.key_value_table(train) if train else '<p>train.json missing</p>'}</div>",
             "</div>"]
    if recorded:
        parts.append(f"<details><summary>metrics.json as written by fit</summary>{H.key_value_table(recorded)}</details>")
    return "\n".join(parts)


def _lr_marks(run: RunData) -> dict[str, float]:
    lf = run.lr_find or {}
    marks = {}
    sugg = lf.get("suggestions") if isinstance(lf.get("suggestions"), dict) else {}
    for k, v in {**{k: lf.get(k) for k in ("valley", "slide", "steep", "minimum", "lr_min", "suggested")}, **sugg}.items():
        if isinstance(v, (int, float)) and v > 0:
            marks[k] = float(v)
    chosen = lf.get("chosen") or lf.get("lr") or run.train.get("lr") or run.train.get("lr_max")
    if isinstance(chosen, (int, float)) and chosen > 0:
        marks["chosen"] = float(chosen)
    return marks


def _training_html(run: RunData, out: Path) -> str:
    parts = []
    lf = run.lr_find or {}
    lrs, losses = lf.get("lrs") or lf.get("lr_values"), lf.get("losses")
    if isinstance(lrs, list) and isinstance(losses, list) and len(lrs) == len(losses) and lrs:
        plots.lr_find_plot(np.asarray(lrs, float), np.asarray(losses, float), _lr_marks(run), out / "plots" / "lr_find.png")
        parts.append(H.figure("plots/lr_find.png", "lr_find curve", "loss against learning rate; dashed: suggestions and the chosen rate"))
    else:
        parts.append("<p>No lr_find curve in this run (lr_find.json absent or without lrs/losses).</p>")
    if run.history is not None and len(run.history):
        plots.history_plot(run.history, out / "plots" / "history.png")
        parts.append(H.figure("plots/history.png", "training curves", "loss and metrics per epoch"))
        parts.append(f"<details><summary>history.csv</summary>{H.data_table(run.history, table_id='history', sortable=False)}</details>")
    else:
        parts.append("<p>No history.csv in this run.</p>")
    return "\n".join(parts)


def _per_class_html(table: pd.DataFrame, multilabel: bool) -> str:
    bars = ("precision", "recall", "f1", "ap", "lwlrap")
    headers = {"f1": "F1", "ap": "AP", "confused_with": "most confused with", "confused_count": "clips"}
    hint = ("Click a header to sort. Sorted by F1, worst first." if not multilabel else
            "Click a header to sort. Precision/recall/F1 at score 0.5; AP ranks clips by the class score.")
    df = table.sort_values("f1", kind="stable")
    index = df.index.to_numpy()
    attrs = None if multilabel else (lambda r: f' class="cls" data-i="{int(index[r])}"')
    if not multilabel:
        hint += " Click a row to list the class's misclassified clips."
    return f'<p class="hint">{hint}</p>' + H.data_table(df.reset_index(drop=True), table_id="class-table",
                                                       headers=headers, bars=bars, row_attrs=attrs)


def _confusion_html(run: RunData, pairs, cfg: ReportConfig) -> str:
    if run.multilabel:
        return ("<p>Multi-label run: a confusion matrix is not defined; see lwlrap and per-class AP in the "
                "per-class table, and the top losses below.</p>")
    n_cls = len(run.classes)
    parts = [f'<p class="hint">Rows: true class, columns: predicted class, colour: share of the true class '
             f'(blue diagonal = correct, red = errors). Click a cell to list its clips (up to {cfg.max_per_cell}, '
             'highest loss first).</p>',
             f'<div class="cm-wrap"><svg id="cm" data-n="{n_cls}" xmlns="http://www.w3.org/2000/svg"></svg></div>']
    if pairs is not None and len(pairs):
        df = pairs[["true", "pred", "count", "share"]].rename(columns={"share": "share of true"})
        attrs = lambda r: f' class="pair" data-i="{int(pairs.at[r, "i"])}" data-j="{int(pairs.at[r, "j"])}"'  # noqa: E731
        parts.append(f"<h3>Most-confused pairs</h3><p class=\"hint\">Click a row to list its clips.</p>"
                     + H.data_table(df, table_id="pairs", row_attrs=attrs))
    else:
        parts.append("<p>No confusions: every validation item is predicted correctly.</p>")
    return "\n".join(parts)


def _top_losses_html(n: int) -> str:
    return (f'<p class="hint">The {n} validation items with the highest loss, worst first.</p>'
            '<div id="top-losses" class="cards"></div>')


def _tsne_html(views: dict) -> str:
    if not views:
        return "<p>t-SNE disabled for this report.</p>"
    options = "".join(f'<option value="{v}">{v}</option>' for v in views)
    return ('<div class="tsne-controls"><label>t-SNE of <select id="tsne-view">' + options + "</select></label>"
            '<span class="hint">filled: correct, ring: wrong prediction; hover for details, click to play</span></div>'
            '<div class="tsne-wrap"><svg id="tsne-svg" viewBox="-20 -20 1040 1040" xmlns="http://www.w3.org/2000/svg"></svg>'
            '<div class="tsne-side"><div id="tsne-info" class="cards"><p class="hint">Click a point.</p></div>'
            '<div id="tsne-legend"></div></div></div>')


def _dataset_html(run: RunData, out: Path) -> str:
    parts = []
    labels = durations = None
    if run.audit_csv is not None:
        audit = pd.read_csv(run.audit_csv, keep_default_na=False, na_values=[""])
        html_src = run.audit_csv.with_name("audit.html")
        if html_src.is_file():
            shutil.copyfile(html_src, out / "audit.html")
            parts.append('<p><a href="audit.html">spec2img audit (full page)</a></p>')
        if "label" in audit:
            labels = [split_labels(v) for v in audit["label"]]
        durations = audit.get("duration")
        parts.append(f"<p class=\"hint\">From {H.esc(run.audit_csv)}.</p>")
    elif run.manifest is not None:
        m = run.manifest
        ok = m[m["status"].astype(str) == "ok"] if "status" in m else m
        labels = [split_labels(v) for v in ok["labels"]] if "labels" in ok else None
        durations = ok.get("duration")
        if "status" in m:
            parts.append(H.key_value_table(m["status"].astype(str).value_counts().to_dict()))
        parts.append(f"<p class=\"hint\">From {H.esc(run.images_dir / 'manifest.csv')}.</p>")
    else:
        return "<p>No audit.csv or manifest.csv found (the images folder is unknown or incomplete).</p>"
    if labels:
        counts = compute.class_counts(labels, run.classes)
        plots.class_distribution_plot(counts, out / "plots" / "classes.png")
        parts.append(H.figure("plots/classes.png", "class distribution"))
    if durations is not None:
        summ = compute.duration_summary(durations)
        if summ:
            parts.append(H.key_value_table({f"duration {k}" if k not in ("count", "hours") else k: v
                                            for k, v in summ.items()}))
            plots.duration_plot(pd.to_numeric(durations, errors="coerce").dropna().to_numpy(), out / "plots" / "durations.png")
            parts.append(H.figure("plots/durations.png", "duration histogram"))
    return "\n".join(parts)
