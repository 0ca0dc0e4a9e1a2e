"""Where labels come from: folder-per-class layouts or a labels CSV.

Known CSV layouts are recognised from their header alone:

=============== ===================== ================ ====== ============ ===================
layout          file column           label column     fold   group        verified
=============== ===================== ================ ====== ============ ===================
freesound2018   fname                 label            -      -            manually_verified
freesound2019   fname                 labels (a,b,c)   -      -            -
esc50           filename              category         fold   src_file     -
urbansound8k    slice_file_name       class            fold   fsID         -
=============== ===================== ================ ====== ============ ===================

Anything else needs ``file_col`` and ``label_col`` (and optionally ``fold_col``). Several labels
in one cell, separated by commas (the 2019 challenge's format), make a multi-label row.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


from .errors import LabelsError
from .paths import regular_file_error


@dataclass(frozen=True)
class LabelLayout:
    """Which CSV columns hold what."""

    name: str
    file_col: str
    label_col: str
    fold_col: str | None = None
    group_col: str | None = None
    verified_col: str | None = None
    sep: str = ","


LAYOUTS = (
    LabelLayout("freesound2018", "fname", "label", verified_col="manually_verified"),
    LabelLayout("freesound2019", "fname", "labels"),
    LabelLayout("esc50", "filename", "category", fold_col="fold", group_col="src_file"),
    LabelLayout("urbansound8k", "slice_file_name", "class", fold_col="fold", group_col="fsID"),
)


@dataclass(frozen=True)
class ClipLabels:
    """Labels and metadata of one clip."""

    labels: tuple[str, ...]
    fold: int | None = None
    group: str | None = None
    verified: bool | None = None


def detect_layout(columns, *, file_col=None, label_col=None, fold_col=None, path: Path | str = "CSV") -> LabelLayout:
    """The layout matching ``columns``; explicit column names win over detection."""
    columns = list(columns)
    if file_col or label_col:
        if not (file_col and label_col):
            raise LabelsError("give both --file-col and --label-col (or neither, for a known layout)")
        for flag, col in (("--file-col", file_col), ("--label-col", label_col), ("--fold-col", fold_col)):
            if col is not None and col not in columns:
                raise LabelsError(f"{path}: {flag} {col!r} is not a column; columns are {', '.join(columns)}")
        return LabelLayout("custom", file_col, label_col, fold_col=fold_col)
    for layout in LAYOUTS:
        needed = [layout.file_col, layout.label_col]
        if all(c in columns for c in needed):
            if layout.fold_col and layout.fold_col not in columns:
                layout = LabelLayout(layout.name, layout.file_col, layout.label_col, None, None, layout.verified_col)
            return layout
    known = "; ".join(f"{l.name}: {l.file_col},{l.label_col}" for l in LAYOUTS)
    raise LabelsError(
        f"{path}: unknown label layout (columns {', '.join(columns)}); known layouts ({known}) "
        "or pass --file-col NAME --label-col NAME"
    )


def read_labels_csv(
    csv_path: Path,
    audio_dir: Path,
    files: list[Path],
    *,
    file_col: str | None = None,
    label_col: str | None = None,
    fold_col: str | None = None,
) -> dict[Path, ClipLabels]:
    """Map each audio file (relative to ``audio_dir``) named in ``csv_path`` to its labels.

    A CSV cell may name a file by its path relative to ``audio_dir`` or by its bare name when that
    is unique (UrbanSound8K keeps clips in ``fold<k>/`` subfolders). Rows that name missing files,
    repeat a file, or lack a label raise :class:`LabelsError` naming the line and column.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.exists() and not csv_path.is_symlink():
        raise LabelsError(f"{csv_path}: labels CSV not found")
    bad = regular_file_error(csv_path, "labels CSV")
    if bad:  # a FIFO would block the read forever
        raise LabelsError(bad)
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise LabelsError(f"{csv_path}: labels CSV not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise LabelsError(f"{csv_path}: cannot parse as CSV ({str(exc).strip()})") from None
    layout = detect_layout(df.columns, file_col=file_col, label_col=label_col, fold_col=fold_col, path=csv_path)

    rel_files = [f.relative_to(audio_dir) for f in files]
    by_path = {r.as_posix(): r for r in rel_files}
    by_name: dict[str, list[Path]] = {}
    for r in rel_files:
        by_name.setdefault(r.name, []).append(r)

    out: dict[Path, ClipLabels] = {}
    for i, row in enumerate(df.itertuples(index=False)):
        line = i + 2  # header is line 1
        rec = dict(zip(df.columns, row))
        name = rec[layout.file_col].strip()
        where = f"{csv_path}: line {line}, column {layout.file_col!r}"
        if not name:
            raise LabelsError(f"{where}: empty file name")
        rel = by_path.get(Path(name).as_posix())
        if rel is None:
            matches = by_name.get(Path(name).name, [])
            if len(matches) > 1:
                raise LabelsError(
                    f"{where}: {name!r} matches {len(matches)} files ({', '.join(map(str, matches[:3]))}); "
                    "give paths relative to AUDIO_DIR in the CSV"
                )
            if not matches:
                raise LabelsError(f"{where}: {name!r} is not under {audio_dir} (no such audio file)")
            rel = matches[0]
        if rel in out:
            raise LabelsError(f"{where}: {name!r} is listed twice; keep one row per file")
        labels = tuple(s.strip() for s in rec[layout.label_col].split(layout.sep) if s.strip())
        if not labels:
            raise LabelsError(f"{csv_path}: line {line}, column {layout.label_col!r}: empty label for {name!r}")
        fold = _int_or_none(rec, layout.fold_col, csv_path, line)
        group = rec[layout.group_col].strip() if layout.group_col and layout.group_col in rec else None
        verified = None
        if layout.verified_col and layout.verified_col in rec:
            raw = rec[layout.verified_col].strip().lower()
            if raw not in ("0", "1", "true", "false"):
                raise LabelsError(
                    f"{csv_path}: line {line}, column {layout.verified_col!r}: {raw!r} is not 0/1"
                )
            verified = raw in ("1", "true")
        out[rel] = ClipLabels(labels, fold, group or None, verified)
    return out


def folder_labels(audio_dir: Path, files: list[Path]) -> dict[Path, ClipLabels]:
    """Folder-per-class labels: the first folder below ``audio_dir`` names the class.

    Files directly in ``audio_dir`` get no label (their images mirror the input tree).
    """
    out = {}
    for f in files:
        rel = f.relative_to(audio_dir)
        if len(rel.parts) > 1:
            out[rel] = ClipLabels((rel.parts[0],))
    return out


def _int_or_none(rec: dict, col: str | None, csv_path: Path, line: int) -> int | None:
    if not col or col not in rec or rec[col].strip() == "":
        return None
    try:
        return int(float(rec[col]))
    except ValueError:
        raise LabelsError(f"{csv_path}: line {line}, column {col!r}: {rec[col]!r} is not a fold number") from None


# --------------------------------------------------------------------------- labels -> folder names
_PLAIN = re.compile(r"[\w\-+=,@()\[\]]([\w\-+=,@ ().\[\]]*[\w\-+=,@()\[\]])?")
_SLUG = re.compile(r"[^\w\-+=,@()\[\]]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
MAX_NAME = 80  # characters of a folder or file name made from a label (well under 255 bytes)


def _plain(name: str) -> bool:
    """A name that is safe and portable as it is: word characters (any script, NFC) and a few
    punctuation marks, no path separator, not starting with '.', no control characters."""
    return (bool(_PLAIN.fullmatch(name)) and len(name) <= MAX_NAME
            and unicodedata.normalize("NFC", name) == name and name.split(".")[0].lower() not in _RESERVED)


def _hashed(name: str) -> str:
    slug = _SLUG.sub("_", unicodedata.normalize("NFKC", name)).strip("_ .")[: MAX_NAME - 10] or "x"
    return f"{slug}_{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def folder_names(names: Iterable[str]) -> dict[str, str]:
    """Map each label (or path component) to a safe, unique folder name; the manifest keeps the label.

    A plain label (``dog``, ``Acoustic_guitar``, ``air conditioner``) is its own folder name. Any
    other (``..``, ``a/b``, ``/abs``, empty, NUL or control characters, too long, not NFC, a Windows
    device name) becomes a slug plus 8 hex digits of its SHA-1, so it never names a path of its own
    and two labels never share a folder. Labels equal after case folding and NFKC normalisation
    (``Dog``/``dog``, ``é`` composed/decomposed) all get hashed names too, so they stay apart on
    case-insensitive or normalising file systems. Deterministic: the same set of names gives the same
    folders on every run.
    """
    names = sorted(set(names))
    folded: dict[str, list[str]] = {}
    for n in names:
        folded.setdefault(unicodedata.normalize("NFKC", n).casefold(), []).append(n)
    out = {}
    for n in names:
        clash = len(folded[unicodedata.normalize("NFKC", n).casefold()]) > 1
        out[n] = n if _plain(n) and not clash else _hashed(n)
    # a plain name could equal another's hashed name (e.g. a label literally "x_1234abcd")
    taken: dict[str, str] = {}
    for n in names:
        key = out[n].casefold()
        if key in taken and taken[key] != n:
            out[n] = _hashed(n + "\0")
        taken[out[n].casefold()] = n
    return out
