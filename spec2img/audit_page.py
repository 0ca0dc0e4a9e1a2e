"""The audit's self-contained HTML page (:func:`render_html`): summary, the issue rules, charts
the data calls for, per-class counts and a sortable table of files with issues. The numbers come
from :mod:`spec2img.audit_stats`; nothing here reads audio."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from .audit_stats import RULES, AuditResult, _plural
from .io import asset_text

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
    for r, row in enumerate(df.itertuples(index=False, name=None)):  # plain tuples: columns may be labels
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
