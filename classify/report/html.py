"""Page assembly: small functions that turn computed tables into HTML fragments, and one template.

Everything interactive (sorting, confusion-cell clips, t-SNE) is done by the vendored
``assets/report.js`` from the JSON embedded in the page, so the page works from ``file://``.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from string import Template

import numpy as np
import pandas as pd

from .compute import human_number

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/report.css">
</head>
<body>
<header>
<h1>$title</h1>
<nav>$nav</nav>
</header>
<main>
$notes
$sections
</main>
<aside id="drawer" hidden>
<div class="drawer-head"><h3 id="drawer-title"></h3><button type="button" id="drawer-close" aria-label="close">&times;</button></div>
<div id="drawer-body" class="cards"></div>
</aside>
<div id="tooltip" hidden></div>
<script type="application/json" id="report-data">$data</script>
<script src="assets/sortable.js"></script>
<script src="assets/report.js"></script>
</body>
</html>
""")


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value, digits: int = 3) -> str:
    """Numbers for tables: NaN -> '–', ints as ints, floats to ``digits`` decimals."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1e5:
            return f"{value:,.0f}"
        if abs(value) != 0 and abs(value) < 1e-3:
            return human_number(value)
        return f"{value:.{digits}f}"
    return esc(value)


def to_json(data) -> str:
    """Compact JSON safe inside a <script> element (NaN -> null, '</' escaped)."""
    def clean(o):
        if isinstance(o, float):
            return None if math.isnan(o) or math.isinf(o) else o
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return clean(o.item())
        return o

    text = json.dumps(clean(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def asset_text(name: str) -> str:
    return resources.files("classify.report").joinpath("assets", name).read_text(encoding="utf-8")


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def key_value_table(pairs: dict, cls: str = "kv") -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs.items())
    return f'<table class="{cls}">{rows}</table>'


def _cell(v) -> str:
    if isinstance(v, (list, tuple)):
        text = ", ".join(str(x) for x in v)
        return esc(text if len(text) < 200 else text[:197] + "...")
    if isinstance(v, dict):
        return esc(json.dumps(v)[:200])
    if isinstance(v, (float, np.floating)) and not math.isnan(v):
        return human_number(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return human_number(v)
    return fmt(v)


def notes_box(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<div class="notes"><strong>Notes</strong><ul>{items}</ul></div>'


def metrics_table(headline: dict[str, float], spread: pd.DataFrame | None = None) -> str:
    """Headline metrics as big numbers; with ``spread`` (cv) mean ± std across folds."""
    names = {"accuracy": "accuracy", "top3_accuracy": "top-3 accuracy", "map3": "MAP@3",
             "macro_f1": "macro F1", "lwlrap": "lwlrap", "mean_ap": "mean AP", "micro_f1": "micro F1"}
    tiles = []
    for key, value in headline.items():
        extra = ""
        if spread is not None and key in spread.index:
            m, s = spread.loc[key, "mean"], spread.loc[key, "std"]
            extra = f'<div class="spread">folds: {fmt(m)} ± {fmt(s)}</div>'
        tiles.append(f'<div class="metric"><div class="value">{fmt(value)}</div>'
                     f'<div class="name">{esc(names.get(key, key))}</div>{extra}</div>')
    return f'<div class="metrics">{"".join(tiles)}</div>'


def data_table(df: pd.DataFrame, *, table_id: str, sortable: bool = True, row_attrs=None,
               headers: dict[str, str] | None = None, bars: tuple[str, ...] = ()) -> str:
    """A plain HTML table; numeric cells carry ``data-v`` for the JS sorter and optional bars."""
    headers = headers or {}
    cols = list(df.columns)
    head = "".join(
        f'<th data-col="{k}" data-num="{int(pd.api.types.is_numeric_dtype(df[c]))}">{esc(headers.get(c, c))}</th>'
        for k, c in enumerate(cols)
    )
    body = []
    for r, row in enumerate(df.itertuples(index=False, name=None)):  # plain tuples: columns may be labels
        tds = []
        for c, v in zip(cols, row):
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                fv = float(v)
                dv = "" if math.isnan(fv) else f"{fv:.6g}"
                style = ""
                if c in bars and not math.isnan(fv):
                    style = f' style="--v:{max(0.0, min(1.0, fv)):.3f}" class="bar"'
                tds.append(f'<td data-v="{dv}"{style}>{fmt(v)}</td>')
            else:
                tds.append(f'<td class="t">{esc(v)}</td>')
        attrs = row_attrs(r) if row_attrs else ""
        body.append(f"<tr{attrs}>{''.join(tds)}</tr>")
    cls = "data sortable" if sortable else "data"
    return f'<table id="{table_id}" class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def figure(src: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}" loading="lazy">{cap}</figure>'


def page(title: str, sections: list[tuple[str, str, str]], notes: list[str], data: dict) -> str:
    """``sections``: (anchor, nav title, html) in page order."""
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in sections)
    return PAGE.substitute(
        title=esc(title), nav=nav, notes=notes_box(notes),
        sections="\n".join(section(a, t, body) for a, t, body in sections), data=to_json(data),
    )
