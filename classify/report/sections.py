"""The page's sections as HTML fragments, one function per section, from computed tables.

Plots are drawn here (second step), from arrays :mod:`.compute` made (first step).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from . import compute, plots
from . import html as H
from .load import RunData, split_labels


def summary_html(run: RunData, headline: dict, spread) -> str:
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


def training_html(run: RunData, out: Path) -> str:
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


def per_class_html(table: pd.DataFrame, multilabel: bool) -> str:
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


def confusion_html(run: RunData, pairs, max_per_cell: int) -> str:
    if run.multilabel:
        return ("<p>Multi-label run: a confusion matrix is not defined; see lwlrap and per-class AP in the "
                "per-class table, and the top losses below.</p>")
    n_cls = len(run.classes)
    parts = [f'<p class="hint">Rows: true class, columns: predicted class, colour: share of the true class '
             f'(blue diagonal = correct, red = errors). Click a cell to list its clips (up to {max_per_cell}, '
             'highest loss first).</p>',
             f'<div class="cm-wrap"><svg id="cm" data-n="{n_cls}" xmlns="http://www.w3.org/2000/svg"></svg></div>']
    if pairs is not None and len(pairs):
        df = pairs[["true", "pred", "count", "share"]].rename(columns={"share": "share of true"})
        attrs = lambda r: f' class="pair" data-i="{int(pairs.at[r, "i"])}" data-j="{int(pairs.at[r, "j"])}"'  # noqa: E731
        parts.append("<h3>Most-confused pairs</h3><p class=\"hint\">Click a row to list its clips.</p>"
                     + H.data_table(df, table_id="pairs", row_attrs=attrs))
    else:
        parts.append("<p>No confusions: every validation item is predicted correctly.</p>")
    return "\n".join(parts)


def top_losses_html(n: int) -> str:
    return (f'<p class="hint">The {n} validation items with the highest loss, worst first.</p>'
            '<div id="top-losses" class="cards"></div>')


def tsne_html(views: dict) -> str:
    if not views:
        return "<p>t-SNE disabled for this report.</p>"
    options = "".join(f'<option value="{v}">{v}</option>' for v in views)
    return ('<div class="tsne-controls"><label>t-SNE of <select id="tsne-view">' + options + "</select></label>"
            '<span class="hint">filled: correct, ring: wrong prediction; hover for details, click to play</span></div>'
            '<div class="tsne-wrap"><svg id="tsne-svg" viewBox="-20 -20 1040 1040" xmlns="http://www.w3.org/2000/svg"></svg>'
            '<div class="tsne-side"><div id="tsne-info" class="cards"><p class="hint">Click a point.</p></div>'
            '<div id="tsne-legend"></div></div></div>')


def dataset_html(run: RunData, out: Path) -> str:
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
            status = m["status"].astype(str).value_counts()
            parts.append(H.key_value_table({f"clips {k}": int(v) for k, v in status.items()}))
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
