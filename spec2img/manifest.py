"""The manifest: one row per input clip, so that every input is accounted for.

Columns (lists are stored as one cell by :func:`join_cell` and parsed back by :func:`split_cell`):
``source`` (relative to the audio folder), ``images`` (relative to the images folder), ``offsets``
(start of each image's window, s), ``labels``, ``fold``, ``group`` (recording the clip was cut from),
``manually_verified``, ``duration`` (s), ``orig_sr``, ``channels``, ``status`` (ok | skipped | failed),
``error``.

List cells: items joined by ``;``, with ``\\`` -> ``\\\\``, ``;`` -> ``\\;``, NUL -> ``\\0`` inside an item
and an empty item written ``\\e``, so every list of strings round-trips (``rock;pop`` stays one
label). Manifests written before this encoding (plain ``;``-joined) read the same way.

Completeness: ``spec2img_run.json`` carries ``complete: false`` while a run writes the folder and
``complete: true`` with the config digest once its manifest and images agree; :func:`read_manifest`
refuses a folder left incomplete (an interrupted run) with "rerun spec2img".
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from .errors import Spec2ImgError
from .io import plain_table, sheet_table, write_atomic
from .paths import regular_file_error

MANIFEST_NAME = "manifest.csv"
RUN_INFO_NAME = "spec2img_run.json"
COLUMNS = [
    "source", "images", "offsets", "labels", "fold", "group", "manually_verified",
    "duration", "orig_sr", "channels", "status", "error",
]
LIST_COLUMNS = ("images", "offsets", "labels")


def write_manifest(rows: list[dict], images_dir: Path) -> Path:
    """Write rows (lists as Python lists) to ``images_dir/manifest.csv`` atomically."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in LIST_COLUMNS:
        df[col] = df[col].map(lambda v: join_cell(map(_fmt, v)) if isinstance(v, (list, tuple)) else (v or ""))
    buf = io.StringIO()
    # CRLF rows: the csv writer quotes a cell holding any line-terminator character, so a lone
    # '\r' in a file name or label stays inside its cell (with '\n' endings it would end the row)
    # text cells pass spec2img.io.sheet_cell (no formula runs in a spreadsheet); read_manifest undoes it exactly
    sheet_table(df).to_csv(buf, index=False, lineterminator="\r\n")
    path = Path(images_dir) / MANIFEST_NAME
    write_atomic(path, buf.getvalue().encode())
    return path


def read_manifest(images_dir: Path, *, require_complete: bool = True) -> pd.DataFrame:
    """Read ``images_dir/manifest.csv`` with list columns parsed (offsets as floats).

    With ``require_complete`` a folder whose last spec2img run did not finish is refused.
    """
    import pandas as pd

    path = Path(images_dir)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise Spec2ImgError(f"{path}: no manifest; run `spec2img AUDIO_DIR {path.parent}` first")
    bad = regular_file_error(path, "manifest")
    if bad:
        raise Spec2ImgError(bad)
    if require_complete:
        check_complete(path.parent)
    df = pd.read_csv(path, dtype={"source": str, "images": str, "offsets": str, "labels": str,
                                  "group": str, "error": str, "status": str},
                     keep_default_na=False)
    df = plain_table(df)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise Spec2ImgError(f"{path}: not a spec2img manifest (missing columns {', '.join(missing)})")
    for col in LIST_COLUMNS:
        df[col] = df[col].map(split_cell)
    try:
        df["offsets"] = df["offsets"].map(lambda v: [float(x) for x in v])
    except ValueError as exc:
        raise Spec2ImgError(f"{path}: column 'offsets' holds a non-number ({exc}); rerun spec2img") from None
    df["fold"] = pd.to_numeric(df["fold"], errors="coerce").astype("Int64")
    df["manually_verified"] = pd.to_numeric(df["manually_verified"], errors="coerce").astype("Int64")
    return df


def image_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per image of the clips that converted: image, source, labels, fold, group,
    manually_verified, offset."""
    import pandas as pd

    ok = df[df["status"] == "ok"]
    rows = []
    for rec in ok.itertuples(index=False):
        for img, off in zip(rec.images, rec.offsets):
            rows.append({"image": img, "source": rec.source, "labels": list(rec.labels), "fold": rec.fold,
                         "group": rec.group or rec.source, "manually_verified": rec.manually_verified,
                         "offset": off})
    cols = ["image", "source", "labels", "fold", "group", "manually_verified", "offset"]
    return pd.DataFrame(rows, columns=cols)


def write_run_info(images_dir: Path, info: dict) -> None:
    """Record where the images came from (audio folder, labels CSV) for later stages."""
    write_atomic(Path(images_dir) / RUN_INFO_NAME, (json.dumps(info, indent=2) + "\n").encode())


def read_run_info(images_dir: Path) -> dict:
    path = Path(images_dir) / RUN_INFO_NAME
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Spec2ImgError(f"{path}: unreadable ({exc}); rerun spec2img to rewrite it") from None
    if not isinstance(info, dict):
        raise Spec2ImgError(f"{path}: not a JSON object; rerun spec2img to rewrite it")
    return info


def check_complete(images_dir: Path) -> None:
    """Refuse a folder whose last spec2img run stopped before its manifest and images agreed, or
    whose ``spectrogram.json`` is not the one its images were made with."""
    from .config import CONFIG_NAME, SpectrogramConfig

    images_dir = Path(images_dir)
    info = read_run_info(images_dir)
    rerun = (f"rerun `spec2img {info.get('audio_dir') or 'AUDIO_DIR'} {images_dir}` "
             "(it resumes and keeps finished images)")
    if info.get("complete") is False:
        raise Spec2ImgError(f"{images_dir}: the last spec2img run did not finish (interrupted, or stopped "
                            f"by a failure); images and manifest may disagree; {rerun}")
    digest = info.get("digest")
    if digest and (images_dir / CONFIG_NAME).exists():
        if SpectrogramConfig.load(images_dir).digest() != digest:
            raise Spec2ImgError(f"{images_dir}/{CONFIG_NAME}: not the settings the images were made with; "
                                f"{rerun}")


# ----------------------------------------------------------------------------- list cells
def join_cell(items) -> str:
    """One CSV cell for a list of strings (see the module docstring); inverse of :func:`split_cell`."""
    return ";".join(_escape(str(x)) for x in items)


def split_cell(cell) -> list[str]:
    """Parse a list cell written by :func:`join_cell` (or an old plain ``;``-joined one).

    The one parser of ``;``-joined cells (manifest, audit, cv, report); ``None`` and a pandas
    missing value (float NaN, what an empty CSV cell reads as) are the empty list.
    """
    s = "" if cell is None or (isinstance(cell, float) and cell != cell) else str(cell)
    if "\\" not in s:  # the common case, and every manifest written before the escapes
        return [p for p in s.split(";") if p != ""]
    items: list[str] = []
    cur: list[str] = []
    keep, i = False, 0  # keep: the item was written as an explicit empty string
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            i += 2
            if nxt in "\\;":
                cur.append(nxt)
            elif nxt == "0":
                cur.append("\0")
            elif nxt == "e":
                keep = True
            else:  # not an escape join_cell writes: keep it as it was (old manifests)
                cur.append(c + nxt)
            continue
        i += 1
        if c == ";":
            if cur or keep:
                items.append("".join(cur))
            cur, keep = [], False
        else:
            cur.append(c)
    if cur or keep:
        items.append("".join(cur))
    return items


def _escape(x: str) -> str:
    if x == "":
        return "\\e"
    return x.replace("\\", "\\\\").replace(";", "\\;").replace("\0", "\\0")


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
