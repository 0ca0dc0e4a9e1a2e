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

import dataclasses
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


from .errors import LabelsError
from .paths import regular_file_error

log = logging.getLogger(__name__)


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


def normalize_label(label: str) -> str:
    """A label as the whole pipeline keeps it: Unicode NFC, so the composed and decomposed forms of
    one name (``é`` typed on Linux, a folder made on macOS, which stores NFD) are one class.

    The one normaliser of labels: :class:`ClipLabels` (every label spec2img reads, from folders or
    a CSV) and :func:`classify.data.imageset.load_image_set` (manifests written before it) call it.
    """
    return unicodedata.normalize("NFC", label)


def normalize_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """:func:`normalize_label` of each, first occurrence kept (two forms of one label are one)."""
    return tuple(dict.fromkeys(normalize_label(lab) for lab in labels))


@dataclass(frozen=True)
class ClipLabels:
    """Labels and metadata of one clip (labels NFC-normalised: :func:`normalize_label`)."""

    labels: tuple[str, ...]
    fold: int | None = None
    group: str | None = None
    verified: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", normalize_labels(self.labels))


#: What ``--missing`` accepts: a CSV row naming a file that is not under AUDIO_DIR stops the run
#: (``error``) or is left out with one warning line (``skip``: a CSV of a whole data set used on a part).
MISSING_CHOICES = ("error", "skip")


def detect_layout(columns, *, file_col=None, label_col=None, fold_col=None, group_col=None,
                  path: Path | str = "CSV") -> LabelLayout:
    """The layout matching ``columns``; explicit column names win over detection (``group_col``:
    the column naming the recording or speaker a clip comes from, for any layout)."""
    columns = list(columns)
    if group_col is not None and group_col not in columns:
        raise LabelsError(f"{path}: --group-col {group_col!r} is not a column; columns are {', '.join(columns)}")
    if file_col or label_col:
        if not (file_col and label_col):
            raise LabelsError("give both --file-col and --label-col (or neither, for a known layout)")
        for flag, col in (("--file-col", file_col), ("--label-col", label_col), ("--fold-col", fold_col)):
            if col is not None and col not in columns:
                raise LabelsError(f"{path}: {flag} {col!r} is not a column; columns are {', '.join(columns)}")
        return LabelLayout("custom", file_col, label_col, fold_col=fold_col, group_col=group_col)
    for layout in LAYOUTS:
        needed = [layout.file_col, layout.label_col]
        if all(c in columns for c in needed):
            if layout.fold_col and layout.fold_col not in columns:
                layout = LabelLayout(layout.name, layout.file_col, layout.label_col, None, None, layout.verified_col)
            if group_col is not None:
                layout = dataclasses.replace(layout, group_col=group_col)
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
    group_col: str | None = None,
    missing: str = "error",
) -> dict[Path, ClipLabels]:
    """Map each audio file (relative to ``audio_dir``) named in ``csv_path`` to its labels.

    A CSV cell may name a file by its path relative to ``audio_dir`` or by its bare name when that
    is unique (UrbanSound8K keeps clips in ``fold<k>/`` subfolders). Rows that repeat a file or lack
    a label raise :class:`LabelsError` naming the line and column; rows naming a file that is not
    there do too, unless ``missing="skip"`` (one warning line: the count and the first names).
    """
    if missing not in MISSING_CHOICES:
        raise LabelsError(f"--missing {missing!r}: choose one of {', '.join(MISSING_CHOICES)}")
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
    layout = detect_layout(df.columns, file_col=file_col, label_col=label_col, fold_col=fold_col,
                           group_col=group_col, path=csv_path)

    rel_files = [f.relative_to(audio_dir) for f in files]
    by_path = {r.as_posix(): r for r in rel_files}
    by_name: dict[str, list[Path]] = {}
    for r in rel_files:
        by_name.setdefault(r.name, []).append(r)

    out: dict[Path, ClipLabels] = {}
    absent: list[str] = []
    for i, row in enumerate(df.itertuples(index=False, name=None)):  # headers may not be identifiers
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
            if not matches and missing == "skip":
                absent.append(name)
                continue
            if not matches:
                raise LabelsError(f"{where}: {name!r} is not under {audio_dir} (no such audio file); "
                                  "--missing skip leaves out the rows of files that are not there")
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
    if absent:
        log.warning("%s: %d listed file(s) not under %s, left out (--missing skip): %s%s", csv_path, len(absent),
                    audio_dir, ", ".join(absent[:5]), ", ..." if len(absent) > 5 else "")
    return out


def group_from_name(labels: dict[Path, ClipLabels], pattern: str) -> dict[Path, ClipLabels]:
    """``labels`` with each clip's ``group`` taken from its file name by the regular expression
    ``pattern`` (``re.search`` on the name; its first group, or the whole match without one), e.g.
    ``_([a-z]+)_`` gives the speaker ``jackson`` of ``7_jackson_32.wav``.

    Clips of one group stay on one side of every split (keys: paths relative to AUDIO_DIR). Names
    the pattern does not match keep their own path as group; one warning line counts them; none
    matching at all is an error.
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise LabelsError(f"--group-from-name {pattern!r} is not a regular expression ({exc})") from None
    out, unmatched = dict(labels), []
    files = list(labels)
    for rel in files:
        m = rx.search(rel.name)
        if m is None:
            unmatched.append(rel.as_posix())
            continue
        group = m.group(1) if rx.groups else m.group(0)
        out[rel] = dataclasses.replace(out[rel], group=group or None)
    if files and len(unmatched) == len(files):
        raise LabelsError(f"--group-from-name {pattern!r} matches none of the {len(files)} file names "
                          f"(e.g. {files[0].name!r}); try e.g. '^[^_]+_([^_]+)_' for 7_jackson_32.wav")
    if unmatched:
        log.warning("--group-from-name %r: %d of %d file names do not match (e.g. %s); each is its own group",
                    pattern, len(unmatched), len(files), unmatched[0])
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
