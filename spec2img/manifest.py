"""Read ``manifest.csv`` of a spec2img output folder (see ARCHITECTURE.md, contract IMAGES_DIR).

Minimal reader written by the training engineer before the lead's version landed; the lead's
module replaces this one (same two functions, same columns).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import LabelsError

MANIFEST_NAME = "manifest.csv"
LIST_COLUMNS = ("images", "offsets", "labels")


def _split(value) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    return [part for part in str(value).split(";") if part != ""]


def read_manifest(images_dir: Path) -> pd.DataFrame:
    """``manifest.csv`` with its ';'-joined columns parsed into lists (one row per clip)."""
    path = Path(images_dir) / MANIFEST_NAME
    if not path.is_file():
        raise LabelsError(f"{path}: no manifest here; run spec2img AUDIO_DIR {images_dir} first")
    df = pd.read_csv(path, dtype={"source": str, "group": str, "labels": str, "images": str,
                                   "offsets": str}, keep_default_na=False, na_values=[""])
    missing = {"source", "images", "labels"} - set(df.columns)
    if missing:
        raise LabelsError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    for col in LIST_COLUMNS:
        if col in df.columns:
            df[col] = df[col].map(_split)
    df["offsets"] = df["offsets"].map(lambda xs: [float(x) for x in xs]) if "offsets" in df else None
    if "group" not in df.columns:
        df["group"] = df["source"]
    df["group"] = [g if isinstance(g, str) and g else s for g, s in zip(df["group"], df["source"])]
    for col in ("fold", "manually_verified"):
        if col not in df.columns:
            df[col] = pd.NA
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    return df


def image_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per image: ``image, source, labels(list), fold, group, manually_verified, offset``."""
    rows = []
    for rec in df.itertuples(index=False):
        offsets = list(getattr(rec, "offsets", None) or [])
        for i, image in enumerate(rec.images):
            rows.append({
                "image": image, "source": rec.source, "labels": list(rec.labels), "fold": rec.fold,
                "group": rec.group, "manually_verified": rec.manually_verified,
                "offset": offsets[i] if i < len(offsets) else 0.0,
            })
    cols = ["image", "source", "labels", "fold", "group", "manually_verified", "offset"]
    out = pd.DataFrame(rows, columns=cols)
    out["fold"] = out["fold"].astype("Int64")
    out["manually_verified"] = out["manually_verified"].astype("Int64")
    return out
