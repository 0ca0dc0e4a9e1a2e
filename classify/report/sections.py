"""The page's sections as HTML fragments, one function per section, from computed tables.

Plots are drawn here (second step), from arrays :mod:`.compute` made (first step).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from spec2img.io import plain_table, write_atomic
from spec2img.manifest import split_cell

from ..config import FINE_TUNE_ONLY, HEAD_ONLY_ONLY
from . import compute, plots
from . import html as H
from .compute import plural
from .load import RunData

NEVER_SHOWN = {"quiet", "out"}
SPEC_UNITS = {"sr": "Hz", "fmin": "Hz", "fmax": "Hz", "n_fft": "samples", "hop_length": "samples",
              "win_length": "samples", "duration": "s", "tile": "s", "tile_hop": "s", "top_db": "dB"}


def headline_text(run: RunData, clip_headline: dict, window_headline: dict, n_clips: int) -> str:
    """One sentence: what the headline numbers are computed on (shown on the page and logged)."""
    key = "lwlrap" if run.multi_label else "accuracy"
    windows = run.n
    per = (f"each clip scored on the mean of its windows' probabilities ({plural(windows, 'window')} in all)"
           if windows != n_clips else "one image per clip")
    if run.is_cv:
        who = "out-of-fold: every clip scored once, by the one fold model that never trained on it"
    else:
        ck = run.protocol.get("checkpoint") or ("the one logistic fit" if run.head_only else "the saved model")
        who = f"validation clips never trained on, scored by {ck}"
    text = (f"Headline {key} {H.human_number(clip_headline.get(key))} is per clip over {plural(n_clips, 'clip')} "
            f"({who}; {per}).")
    if windows != n_clips and key in window_headline:
        text += f" Per window (each image alone): {H.human_number(window_headline[key])} over {plural(windows, 'window')}."
    return text


def mode_choice_text(metrics: dict) -> str | None:
    """One line on how the probe, the fine-tune or their average was chosen (``mode_choice`` in
    metrics.json, written by :mod:`classify.training.mode`; per fold for cv), or None when the mode
    was given or a shortcut."""
    def one(c: dict) -> str:
        s = c["inner_scores"]
        name = "the average of the probe and the fine-tune" if c["mode"] == "average" else c["mode"]
        tests = c.get("against_probe") or {}
        odds = "".join(f"; {m} against the probe: {t['wins']} clips won, {t['losses']} lost, p={t['p']:.2g}"
                       for m, t in tests.items())
        need = f", a challenger needs p < {c['significance']:g}" if tests and "significance" in c else ""
        return (f"{name} (inner {c['metric']}: probe {s['head-only']:.3f}, fine-tune {s['fine-tune']:.3f}, "
                f"average {s['average']:.3f} on {c['inner_clips']} clips{odds}{need})")

    if isinstance(metrics.get("mode_choice"), dict):
        c = metrics["mode_choice"]
        return (f"Mode chosen on an inner split of the training clips (the validation clips were not read): "
                f"{one(c)}; kept: {c.get('kept', c['mode'])}.")
    folds = {k: f["mode_choice"] for k, f in (metrics.get("folds") or {}).items()
             if isinstance(f, dict) and isinstance(f.get("mode_choice"), dict)}
    if folds:
        return ("Mode chosen per fold on an inner split of its training clips: "
                + "; ".join(f"fold {k}: {one(c)}" for k, c in folds.items()) + ".")
    return None


def summary_html(run: RunData, headline: dict, spread, explain: str) -> str:
    sources = run.preds["source"].astype(str)
    dataset = {"validation windows (images)": run.n, "validation clips": int(sources.nunique()),
               "classes": len(run.classes), "task": "multi-label" if run.multi_label else "single-label"}
    m = run.manifest
    if m is not None and len(m):
        ok = m[m["status"].astype(str) == "ok"] if "status" in m else m
        dataset["clips in images folder"] = len(ok)
        if len(ok) > sources.nunique():
            other = "clips not scored (see Notes)" if run.is_cv else "other (training) clips"
            dataset[other] = len(ok) - int(sources.nunique())
        if "manually_verified" in ok:
            mv = pd.to_numeric(ok["manually_verified"], errors="coerce").dropna()
            if len(mv):
                dataset["verified share"] = float(mv.mean())
    t = run.train
    if t is not None and not run.is_cv:
        dataset["validation split"] = (f"fold {t.valid_fold}" if t.valid_fold is not None
                                       else f"--valid-csv {t.valid_csv}" if t.valid_csv
                                       else f"{t.valid_pct:.0%} of the groups (recordings), stratified")
    train_cfg = dataclasses.asdict(t) if t is not None else {}
    if run.is_cv:
        dataset["folds"] = len(run.folds)
    spec_keys = ("preset", "feature", "sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "mode",
                 "duration", "crop", "tile", "tile_hop")
    spec_cfg = dataclasses.asdict(run.spectrogram) if run.spectrogram is not None else {}
    spec = {k: _with_unit(k, spec_cfg[k]) for k in spec_keys if k in spec_cfg}
    skip = NEVER_SHOWN | (FINE_TUNE_ONLY if run.head_only else HEAD_ONLY_ONLY)
    train = {k: v for k, v in train_cfg.items()
             if k not in skip and (not isinstance(v, dict) or len(str(v)) < 200) and v is not None}
    recorded = {k: v for k, v in run.metrics.items() if isinstance(v, (int, float))}
    parts = [H.metrics_table(headline, spread),
             f'<p class="hint" id="headline-explain">{H.esc(explain)}'
             + (" ± is the spread of the fold models' own scores." if run.is_cv else "") + "</p>",
             '<div class="cols">',
             f"<div><h3>Dataset</h3>{H.key_value_table(dataset)}</div>",
             f"<div><h3>Spectrogram</h3>{H.key_value_table(spec) if spec else '<p>spectrogram.json missing</p>'}</div>",
             f"<div><h3>{'Head-only fit' if run.head_only else 'Training'} settings</h3>"
             f"{H.key_value_table(train) if train else '<p>train.json missing</p>'}</div>",
             "</div>"]
    mode = mode_choice_text(run.metrics)
    if mode:
        parts.insert(2, f'<p class="hint" id="mode-choice">{H.esc(mode)}</p>')
    if recorded:
        parts.append(f"<details><summary>metrics.json as written by fit</summary>{H.key_value_table(recorded)}</details>")
    return "\n".join(parts)


def _with_unit(key: str, value):
    if value is None:
        return "none" if key != "fmax" else "none (sr / 2)"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in SPEC_UNITS:
        return f"{H.human_number(value)} {SPEC_UNITS[key]}"
    return value


def _lr_marks(run: RunData) -> dict[str, float]:
    lf = run.lr_find or {}
    marks = {}
    sugg = lf.get("suggestions") if isinstance(lf.get("suggestions"), dict) else {}
    for k, v in {**{k: lf.get(k) for k in ("valley", "slide", "steep", "minimum", "lr_min", "suggested")}, **sugg}.items():
        if isinstance(v, (int, float)) and v > 0:
            marks[k] = float(v)
    chosen = lf.get("chosen") or lf.get("lr") or (run.train.lr if run.train is not None else None)
    if isinstance(chosen, (int, float)) and chosen > 0:
        marks["chosen"] = float(chosen)
    return marks


def training_html(run: RunData, out: Path) -> str:
    parts = []
    lf = run.lr_find or {}
    lrs, losses = lf.get("lrs") or lf.get("lr_values"), lf.get("losses")
    if isinstance(lrs, list) and isinstance(losses, list) and len(lrs) == len(losses) and lrs:
        plots.plot_lr_find(np.asarray(lrs, float), np.asarray(losses, float), _lr_marks(run), out / "plots" / "lr_find.png")
        parts.append(H.figure("plots/lr_find.png", "lr_find curve", "loss against learning rate; dashed: suggestions and the chosen rate"))
    else:
        lr = run.train.lr if run.train is not None else None
        fixed = f"fixed at {H.human_number(lr)} (--lr)" if isinstance(lr, (int, float)) else "not searched"
        parts.append(f"<p>The learning rate was {H.esc(fixed)}, so no learning-rate search was recorded. "
                     "Run with <code>--lr auto</code> to let lr_find choose it and plot its curve here.</p>")
    if run.history is not None and len(run.history):
        plots.history_plot(run.history, out / "plots" / "history.png")
        parts.append(H.figure("plots/history.png", "training curves", "loss and metrics per epoch"))
        curves = run.protocol.get("curves")
        parts.append('<p class="hint">The epoch lines score each validation window (image) alone'
                     + (f" ({H.esc(curves)})" if curves else "")
                     + "; the headline above scores each clip once, on the mean of its windows, with the saved "
                       "model, so it need not equal any epoch line.</p>")
        parts.append(f"<details><summary>history.csv</summary>{H.data_table(run.history, table_id='history', sortable=False)}</details>")
    else:
        parts.append("<p>No per-epoch history (history.csv) in this run folder.</p>")
    return "\n".join(parts)


def head_only_html(run: RunData) -> str:
    """What a ``--head-only`` run did: features from a frozen backbone, one logistic fit."""
    t, mi, sp = run.train, run.model, run.spectrogram
    fold_metrics = [(fd.name, fd.metrics) for fd in run.folds] or [("", run.metrics)]
    m0 = fold_metrics[0][1]
    weights = "?" if t is None else t.weights or ("pretrained weights" if t.pretrained else "random weights")
    cut = mi.cut if mi is not None else (t.cut if t is not None else 0) or 0
    dims = mi.hidden if mi is not None else None
    sr, hop = (sp.sr, sp.hop_length) if sp is not None else (None, None)
    width = (mi.crop_width if mi is not None else None) or m0.get("crop_width")
    win = (f"{plural(int(width), 'frame')} (about {H.human_number(round(width * hop / sr, 2))} s)"
           if width and sr and hop else (plural(int(width), "frame") if width else "the whole image"))
    feats = {
        "backbone": f"{(mi or t).arch if (mi or t) else '?'}, frozen ({weights}); no gradient step touched it",
        "stages dropped from its end (--cut)": cut,
        "pooling": f"{mi.pool if mi is not None else 'mean'} over time and frequency",
        "feature vector": f"{dims} values per window" if dims else "unknown (model.json missing)",
        "windows": f"{win}, hop half a window; a clip's prediction is the mean over its windows",
        "training windows": m0.get("train_windows") if not run.folds else "per fold, below",
    }
    multi = run.multi_label
    protocol = run.protocol
    how = protocol.get("head_c")
    Cs = sorted({float(m.get("head_c")) for _, m in fold_metrics if isinstance(m.get("head_c"), (int, float))})
    if how in (None, "fixed"):
        how = f"fixed at C = {H.human_number(Cs[0]) if Cs else (t.head_c if t else '?')} (--head-c), not tuned on data"
    fit = {
        "model": "StandardScaler, then scikit-learn LogisticRegression "
                 + ("(one binary regression per class, sigmoid)" if multi else "(multinomial, softmax)"),
        "regularisation": "L2 penalty, strength 1/C" + (f"; C = {', '.join(H.human_number(c) for c in Cs)}" if Cs else ""),
        "how C was chosen": how,
        "unverified clips": (f"sample weight {H.human_number(t.unverified_weight)}"
                             if t is not None and t.unverified_weight != 1 else "weight 1 (as verified)"),
        "folded into the network": "scaler and regression become the model's linear head (model.pt)",
    }
    parts = ["<p>This run did not fine-tune: it computed features with a frozen pretrained network and fitted "
             "one logistic regression on them, so there are no epochs, learning rates, augmentation or "
             "training curves.</p>",
             '<div class="cols">',
             f"<div><h3>Features</h3>{H.key_value_table(feats)}</div>",
             f"<div><h3>Logistic fit</h3>{H.key_value_table(fit)}</div>", "</div>"]
    rows = []
    for name, m in fold_metrics:
        h = None
        for fd in run.folds:
            if fd.name == name and fd.history is not None and len(fd.history):
                h = fd.history
        if h is None and run.history is not None and len(run.history) and not run.folds:
            h = run.history
        rows.append({**({"fold": name} if name else {}),
                     "C": m.get("head_c"), "training windows": m.get("train_windows"),
                     "training loss": float(h["train_loss"].iloc[0]) if h is not None and "train_loss" in h else None,
                     "features (s)": m.get("embed_seconds"), "logistic fit (s)": m.get("head_fit_seconds")})
    df = pd.DataFrame(rows).dropna(axis=1, how="all")
    if len(df.columns):
        parts.append("<h3>Fit" + ("s per fold" if len(rows) > 1 else "") + "</h3>"
                     + H.data_table(df, table_id="head-fits", sortable=len(rows) > 1))
    parts.append(unknown_html(run))
    return "\n".join(parts)


def unknown_html(run: RunData) -> str:
    """The run's unknown threshold (``openset.json``): its value, how it was chosen, and the share of
    the validation images it would call unknown."""
    from ..openset_file import read_openset

    found = read_openset(run.run_dir) if not run.folds else None
    if found is None:
        return ""
    scores = run.probs.max(1) if len(run.probs) else np.zeros(0)
    rows = {
        "threshold": H.human_number(found.threshold),
        "rule": "a clip whose highest class probability is below it is reported as 'unknown' "
                "(classify predict, classify serve; --unknown-threshold overrides)",
        "how it was chosen": found.method,
        "held-out known clips it was chosen on": found.n_known,
        "background clips": found.n_background,
        "their out-of-fold accuracy": None if found.oof_accuracy is None else H.human_number(found.oof_accuracy),
        "validation images it would call unknown": (f"{int((scores < found.threshold).sum())} of {len(scores)}"
                                                    " (never used to choose it)"),
    }
    return "<h3>Unknown threshold (none of these)</h3>" + H.key_value_table(rows)


def suspects_html(n_suspects: int, n_clips: int, shown: int, unverified: int | None, csv_href: str | None) -> str:
    """The suspect-labels section (cards drawn by report.js from the page data)."""
    if not n_suspects:
        return (f"<p>No suspect labels: for every one of the {plural(n_clips, 'clip')}, the out-of-fold "
                "predictions agree with the given label or are not confident enough to contradict it.</p>")
    head = (f"<p><b>{plural(n_suspects, 'clip')}</b> of {n_clips:,} "
            f"{'has a label' if n_suspects == 1 else 'have labels'} that {'its' if n_suspects == 1 else 'their'} "
            "own out-of-fold predictions contradict")
    if unverified is not None:
        head += f" ({unverified:,} of them not manually verified)"
    head += ".</p>"
    rule = ('<p class="hint">Confident learning: each class gets a threshold, the mean probability the models '
            "give it on the clips labelled with it; a clip is counted as really being class <i>j</i> when "
            "<i>j</i> is the most probable class reaching its threshold. Per given label, as many clips as "
            "that count estimates are suspect (those with the largest margin p(suggested) − p(given)), "
            "ranked by that margin, worst first. Probabilities are the mean over a clip's windows.</p>")
    more = f'<p class="hint">Showing the first {shown}; the CSV lists all.</p>' if shown < n_suspects else ""
    csv = ""
    if csv_href:
        csv = (f'<p><a href="{H.esc(csv_href)}" download>suspect_labels.csv</a> (file, given, suggested, score): '
               "delete the rows you disagree with, correct <i>suggested</i> where needed, then rerun with "
               "<code>--relabel suspect_labels.csv</code> (take the suggestions) or "
               "<code>--drop suspect_labels.csv</code> (leave the clips out).</p>")
    return head + rule + csv + more + '<div id="suspect-cards" class="cards"></div>'



def per_class_html(table: pd.DataFrame, multi_label: bool) -> str:
    bars = ("precision", "recall", "f1", "ap", "lwlrap")
    headers = {"f1": "F1", "ap": "AP", "confused_with": "most confused with", "confused_count": "clips"}
    hint = ("Click a header to sort. Sorted by F1, worst first." if not multi_label else
            "Click a header to sort. Precision/recall/F1 at score 0.5; AP ranks clips by the class score.")
    df = table.sort_values("f1", kind="stable")
    index = df.index.to_numpy()
    attrs = None if multi_label else (lambda r: f' class="cls" data-i="{int(index[r])}"')
    if not multi_label:
        hint += " Click a row to list the class's misclassified clips."
    return f'<p class="hint">{hint}</p>' + H.data_table(df.reset_index(drop=True), table_id="class-table",
                                                       headers=headers, bars=bars, row_attrs=attrs)


def confusion_html(run: RunData, pairs, max_per_cell: int) -> str:
    if run.multi_label:
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
    what = "validation window with the highest loss" if n == 1 else f"{n} validation windows with the highest loss, worst first"
    return f'<p class="hint">The {what}.</p><div id="top-losses" class="cards"></div>'



def tsne_html(views: dict) -> str:
    if not views:
        return "<p>t-SNE disabled for this report.</p>"
    options = "".join(f'<option value="{v}">{v}</option>' for v in views)
    return ('<div class="tsne-controls"><label>t-SNE of <select id="tsne-view">' + options + "</select></label>"
            '<span class="hint">filled: correct, ring: wrong prediction; hover for details, click to play</span></div>'
            '<div class="tsne-wrap"><svg id="tsne-svg" viewBox="-20 -20 1040 1040" xmlns="http://www.w3.org/2000/svg"></svg>'
            '<div class="tsne-side"><div id="tsne-info" class="cards"><p class="hint">Click a point.</p></div>'
            '<div class="tsne-find"><input type="search" id="tsne-search" placeholder="find classes…" '
            'aria-label="highlight classes whose name contains"> <span id="tsne-found" class="hint"></span></div>'
            '<p class="hint">Click a class to highlight it; click again to clear.</p>'
            '<div id="tsne-pairs"></div><div id="tsne-legend"></div></div></div>')


AUDIT_NAV_MARK = "<!--report-nav-->"


def dataset_html(run: RunData, out: Path) -> str:
    parts = []
    labels = durations = None
    audit_page = run.audit_csv.with_name("audit.html") if run.audit_csv is not None else None
    if audit_page is not None and audit_page.is_file():
        page = audit_page.read_text(encoding="utf-8")
        back = '<a href="index.html">← report</a>'
        write_atomic(out / "audit.html", page.replace(AUDIT_NAV_MARK, back, 1).encode())
        parts.append('<p><a href="audit.html" id="audit-link"><b>Audit of the audio files</b></a> '
                     "(spec2img audit: levels, clipping, silence, files with issues).</p>")
    else:
        parts.append('<p class="hint">No audit page found. <code>spec2img audit AUDIO_DIR</code> writes one '
                     "(by default to AUDIO_DIR/../audit/); rebuild this report to link it here.</p>")
    if run.audit_csv is not None:
        audit = plain_table(pd.read_csv(run.audit_csv, keep_default_na=False, na_values=[""]))
        col = "labels" if "labels" in audit else ("label" if "label" in audit else None)
        if col:
            labels = [split_cell(v) for v in audit[col]]
        durations = audit.get("duration")
        parts.append(f"<p class=\"hint\">From {H.esc(run.audit_csv)}.</p>")
    elif run.manifest is not None:
        m = run.manifest
        ok = m[m["status"].astype(str) == "ok"] if "status" in m else m
        labels = [split_cell(v) for v in ok["labels"]] if "labels" in ok else None
        durations = ok.get("duration")
        if "status" in m:
            status = m["status"].astype(str).value_counts()
            parts.append(H.key_value_table({f"clips {k}": int(v) for k, v in status.items()}))
        parts.append(f"<p class=\"hint\">From {H.esc(run.images_dir / 'manifest.csv')}.</p>")
    else:
        parts.append("<p>No audit.csv or manifest.csv found (the images folder is unknown or incomplete).</p>")
        return "\n".join(parts)
    if labels:
        counts = compute.class_counts(labels, run.classes)
        plots.class_distribution_plot(counts, out / "plots" / "classes.png")
        parts.append(H.figure("plots/classes.png", "class distribution"))
    if durations is not None:
        d = pd.to_numeric(durations, errors="coerce").dropna().to_numpy()
        summ = compute.duration_summary(durations)
        if summ and summ["max"] - summ["min"] < 0.01:
            parts.append(f"<p>All {plural(summ['count'], 'clip')} last {H.human_number(round(summ['min'], 2))} s "
                         f"({H.human_number(round(summ['hours'], 2))} h in all).</p>")
        elif summ:
            parts.append(H.key_value_table({f"duration {k} (s)" if k not in ("count", "hours") else k: v
                                            for k, v in summ.items()}))
            plots.duration_plot(d, out / "plots" / "durations.png")
            parts.append(H.figure("plots/durations.png", "duration histogram"))
    return "\n".join(parts)
