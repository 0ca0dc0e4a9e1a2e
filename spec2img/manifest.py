"""The manifest: one row per input clip, so that every input is accounted for.

Columns (lists are ';'-joined in the CSV and parsed into Python lists by :func:`read_manifest`):
``source`` (relative to the audio folder), ``images`` (relative to the images folder), ``offsets``
(start of each image's window, s), ``labels``, ``fold``, ``group`` (recording the clip was cut from),
``manually_verified``, ``duration`` (s), ``orig_sr``, ``channels``, ``status`` (ok | skipped | failed),
``error``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from .errors import Spec2ImgError
from .io import write_atomic

MANIFEST_NAME = "manifest.csv"
RUN_INFO_NAME = "spec2img_run.json"
COLUMNS = [
    "source", "images", "offsets", "labels", "fold", "group", "manually_verified",
    "duration", "orig_sr", "channels", "status", "error",
]
LIST_COLUMNS = ("images", "offsets", "labels")


def write_manifest(rows: list[dict], images_dir: Path) -> Path:
    """Write rows (lists as Python lists) to ``images_dir/manifest.csv`` atomically."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in LIST_COLUMNS:
        df[col] = df[col].map(lambda v: ";".join(map(_fmt, v)) if isinstance(v, (list, tuple)) else (v or ""))
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    path = Path(images_dir) / MANIFEST_NAME
    write_atomic(path, buf.getvalue().encode())
    return path


def read_manifest(images_dir: Path) -> pd.DataFrame:
    """Read ``images_dir/manifest.csv`` with list columns parsed (offsets as floats)."""
    path = Path(images_dir)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise Spec2ImgError(f"{path}: no manifest; run `spec2img AUDIO_DIR {path.parent}` first")
    df = pd.read_csv(path, dtype={"source": str, "images": str, "offsets": str, "labels": str,
                                  "group": str, "error": str, "status": str},
                     keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise Spec2ImgError(f"{path}: not a spec2img manifest (missing columns {', '.join(missing)})")
    for col in LIST_COLUMNS:
        df[col] = df[col].map(lambda s: [p for p in str(s).split(";") if p != ""])
    df["offsets"] = df["offsets"].map(lambda v: [float(x) for x in v])
    df["fold"] = pd.to_numeric(df["fold"], errors="coerce").astype("Int64")
    df["manually_verified"] = pd.to_numeric(df["manually_verified"], errors="coerce").astype("Int64")
    return df


def image_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per image of the clips that converted: image, source, labels, fold, group,
    manually_verified, offset."""
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
    return json.loads(path.read_text()) if path.exists() else {}


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
