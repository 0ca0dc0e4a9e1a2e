"""Images in memory, labels as targets, train/validation selection, fixed-width time crops.

Every PNG is decoded once into a uint8 tensor ``(C, n_rows, frames)``; training then only slices
tensors. With a fresh image store (``spec2img store IMAGES_DIR``, :mod:`spec2img.store`) the tensors
are memory-mapped views of it instead: nothing is decoded and pixels are read when a crop needs them.
Targets are float rows ``(n_classes + 1,)``: one-hot (single-label) or multi-hot
(multi-label), and the per-sample loss weight in the last column (1, or ``unverified_weight``), so
mixup mixes both and the loss needs no side channel.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spec2img.config import SpectrogramConfig
from spec2img.io import plain_table, read_png
from spec2img.labels import normalize_labels
from spec2img.manifest import image_table, read_manifest
from spec2img.store import open_fresh
from spec2img.window import crop_offset, seconds_to_columns, take

from ..errors import ClassifyError
from . import splits
from .splits import Selection  # noqa: F401  (re-exported: classify.data.Selection)

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    """A spec2img folder in memory.

    ``images[i]`` uint8 ``(C, H, W_i)`` for row ``i`` of ``table`` (one row per image, with a
    ``clip`` column indexing clips); ``targets`` float32 ``(n_images, n_classes)``.
    """

    root: Path
    cfg: SpectrogramConfig
    table: pd.DataFrame
    images: list[torch.Tensor]
    classes: list[str]
    targets: np.ndarray
    multi_label: bool

    @property
    def n_clips(self) -> int:
        return int(self.table["clip"].max()) + 1 if len(self.table) else 0

    def clip_table(self) -> pd.DataFrame:
        """One row per clip (first image's row): ``source, group, fold, manually_verified, labels``."""
        return self.table.groupby("clip", sort=True).first()

    @property
    def max_width(self) -> int:
        return max(im.shape[-1] for im in self.images)


def decode_all(root: Path, rel_paths: list[str], *, n_rows: int, channels: int,
               threads: int = 4) -> list[torch.Tensor]:
    """Decode PNGs (thread pool; PIL releases the GIL) into uint8 ``(C, H, W)`` tensors."""

    def one(rel: str) -> torch.Tensor:
        path = root / rel
        try:
            arr = read_png(path)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ClassifyError(f"{path}: cannot decode PNG ({exc}); re-run spec2img") from None
        arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr[..., :3], -1, 0)
        if arr.shape[0] != channels or arr.shape[1] != n_rows:
            raise ClassifyError(
                f"{path}: image is {arr.shape[0]}x{arr.shape[1]} (channels x rows), spectrogram.json "
                f"says {channels}x{n_rows}; re-run spec2img into a fresh folder"
            )
        return torch.from_numpy(np.array(arr, copy=True))

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, rel_paths))


def load_image_set(images_dir: Path, *, classes: list[str] | None = None, relabel: str | Path | None = None,
                   drop: str | Path | None = None) -> ImageSet:
    """Read manifest + spectrogram config + every labelled image of a spec2img folder
    (``relabel`` / ``drop``: CSVs applied by :func:`apply_label_edits` first)."""
    root = Path(images_dir)
    if not root.is_dir():
        raise ClassifyError(f"{root}: no such folder; pass the output folder of spec2img")
    cfg = SpectrogramConfig.load(root)
    table = image_table(read_manifest(root))
    if relabel is not None or drop is not None:
        table = apply_label_edits(table, relabel=relabel, drop=drop)
    # NFC: one class for the composed and decomposed forms of a label (manifests from before spec2img did it)
    table["labels"] = table["labels"].map(lambda labs: list(normalize_labels(labs)))
    unlabelled = table["labels"].map(len) == 0
    if unlabelled.any():
        log.warning("%d image(s) without labels ignored (e.g. %s)", int(unlabelled.sum()),
                    table.loc[unlabelled, "image"].iloc[0])
        table = table[~unlabelled]
    if table.empty:
        raise ClassifyError(f"{root}/manifest.csv lists no labelled images; nothing to train on")
    table = table.reset_index(drop=True)
    for col in ("fold", "manually_verified"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
    table["group"] = table["group"].astype(str)
    table["clip"] = pd.factorize(table["source"])[0]
    found = sorted({lab for labs in table["labels"] for lab in labs})
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise ClassifyError(f"labels {', '.join(unknown[:5])} are not among the run's classes")
    index = {c: i for i, c in enumerate(classes)}
    targets = np.zeros((len(table), len(classes)), dtype=np.float32)
    for r, labs in enumerate(table["labels"]):
        targets[r, [index[lab] for lab in labs]] = 1.0
    multi = bool((targets.sum(1) > 1).any())
    names = list(table["image"])
    store = open_fresh(root, names, cfg)  # `spec2img store IMAGES_DIR`: memory-mapped, nothing decoded
    images = ([torch.from_numpy(store.get(n)) for n in names] if store is not None
              else decode_all(root, names, n_rows=cfg.n_rows, channels=cfg.channels))
    return ImageSet(root, cfg, table, images, list(classes), targets, multi)


def _edit_csv(path: Path, flag: str, need_label: bool) -> pd.DataFrame:
    try:
        df = plain_table(pd.read_csv(path, dtype=str, keep_default_na=False))  # e.g. suspect_labels.csv
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ClassifyError(f"--{flag} {path}: cannot read it as CSV ({exc})") from None
    col = next((c for c in ("file", "source", "fname", "filename") if c in df.columns), None)
    label = next((c for c in ("suggested", "label", "new_label") if c in df.columns), None)
    if col is None or (need_label and label is None):
        raise ClassifyError(f"--{flag} {path}: needs a column 'file'" + (" and a column 'suggested'" if need_label else "")
                            + f" (the suspect_labels.csv layout); it has {', '.join(df.columns) or 'none'}")
    return df.rename(columns={col: "file", **({label: "suggested"} if label else {})})


def apply_label_edits(table: pd.DataFrame, *, relabel: str | Path | None = None,
                      drop: str | Path | None = None) -> pd.DataFrame:
    """The image table with the clips listed in ``drop`` removed and those in ``relabel`` given
    the label in its ``suggested`` column (an empty cell leaves the clip as it is).

    Both CSVs name clips by manifest ``source`` in a ``file`` column (``suspect_labels.csv`` from
    ``classify cv``). A name that matches no clip is an error (the CSV is for another folder).
    """
    sources = set(table["source"].astype(str))
    for flag, path in (("drop", drop), ("relabel", relabel)):
        if path is None:
            continue
        df = _edit_csv(Path(path), flag, need_label=flag == "relabel")
        unknown = sorted(set(df["file"]) - sources)
        if unknown:
            raise ClassifyError(f"--{flag} {path}: {len(unknown)} file(s) are not in manifest.csv "
                                f"(e.g. {unknown[0]!r}); use the 'file' values of this folder's suspect_labels.csv")
        if flag == "drop":
            gone = table["source"].isin(set(df["file"]))
            table = table[~gone].reset_index(drop=True)
            log.warning("--drop %s: %d clip(s) left out (%d images)", path, df["file"].nunique(), int(gone.sum()))
        else:
            new = {f: lab.strip() for f, lab in zip(df["file"], df["suggested"]) if lab.strip()}
            table = table.copy()
            table["labels"] = [[new[s]] if s in new else labs for s, labs in zip(table["source"], table["labels"])]
            log.warning("--relabel %s: %d clip(s) relabelled", path, len(new))
    return table


# --------------------------------------------------------------------------------- selection
def has_verified(table: pd.DataFrame) -> bool:
    return "manually_verified" in table and table["manually_verified"].notna().any()


def select_for(ds: ImageSet, cfg, *, clip_valid: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> "Selection":
    """:func:`select` with the validation rules of a :class:`classify.config.TrainConfig`."""
    return select(ds, valid_pct=cfg.valid_pct, valid_fold=cfg.valid_fold,
                  valid_csv=Path(cfg.valid_csv) if cfg.valid_csv else None,
                  verified_only=cfg.verified_only, valid_unverified=cfg.valid_unverified,
                  seed=cfg.seed or 0, clip_valid=clip_valid, exclude=exclude)


def select(ds: ImageSet, *, valid_pct: float = 0.2, valid_fold: int | None = None,
           valid_csv: Path | None = None, verified_only: bool = False,
           valid_unverified: bool = False, seed: int = 0, clip_valid: np.ndarray | None = None,
           exclude: np.ndarray | None = None) -> Selection:
    """Choose training and validation images (clip-level, grouped; see :mod:`classify.data.splits`).

    ``clip_valid`` (bool per clip) overrides the other rules (cv folds use it); ``exclude`` (bool
    per clip) removes clips from both sides (cv's held-out test clips).
    """
    clips = ds.clip_table()
    strata = clips["labels"].map(lambda labs: labs[0]).to_numpy()
    groups = clips["group"].astype(str).to_numpy()
    unvalidated: tuple[str, ...] = ()
    if clip_valid is not None:
        valid = np.asarray(clip_valid, bool)
    elif valid_csv is not None:
        valid = _valid_from_csv(Path(valid_csv), clips)
    elif valid_fold is not None:
        valid = splits.fold_split(clips["fold"].to_numpy(dtype=float, na_value=np.nan), valid_fold).valid
    else:
        split = splits.valid_pct_split(strata, groups, valid_pct=valid_pct, seed=seed)
        valid, unvalidated = split.valid, split.unvalidated
        for name in unvalidated:
            log.warning("class %r: all its clips come from one recording; it is trained on but "
                        "cannot be validated without leakage (left out of validation)", name)
    leaks = splits.leaked_groups(valid, groups)
    if leaks:
        log.warning("%d recording(s) have clips on both sides of the split (e.g. %s): validation "
                    "scores are inflated", len(leaks), leaks[0])
    train = ~valid
    verified_col = has_verified(clips)
    verified = clips["manually_verified"].fillna(0).astype(int).to_numpy() == 1 if verified_col else None
    dropped = 0
    if verified_col and not valid_unverified:
        valid, train = splits.restrict_valid_to_verified(valid, verified, groups)
        dropped = int((~valid & ~train).sum())
    if verified_col and verified_only:
        train = train & verified
    if exclude is not None:
        valid, train = valid & ~exclude, train & ~exclude
    if not valid.any():
        raise ClassifyError("the validation set is empty; lower --valid-pct's granularity or check the folds")
    if not train.any():
        raise ClassifyError("the training set is empty; check --valid-fold / --valid-csv")
    clip_of = ds.table["clip"].to_numpy()
    return Selection(np.flatnonzero(train[clip_of]), np.flatnonzero(valid[clip_of]), unvalidated, dropped)


def _valid_from_csv(path: Path, clips: pd.DataFrame) -> np.ndarray:
    """Validation clips named in ``path`` (column ``source``, ``image``, ``filename`` or ``fname``;
    matched against the manifest source, with or without folders and extension)."""
    try:
        df = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError) as exc:
        raise ClassifyError(f"--valid-csv {path}: cannot read ({exc})") from None
    col = next((c for c in ("source", "image", "filename", "fname") if c in df.columns), None)
    if col is None:
        raise ClassifyError(f"--valid-csv {path}: needs a column 'source', 'image', 'filename' or 'fname'")

    def key(s: str) -> str:
        return Path(str(s)).stem

    wanted = {key(v) for v in df[col].dropna()}
    valid = np.array([key(s) in wanted for s in clips["source"]])
    if not valid.any():
        raise ClassifyError(f"--valid-csv {path}: none of its {len(wanted)} names match a manifest source")
    return valid


def loss_weights(ds: ImageSet, *, unverified_weight: float) -> np.ndarray:
    """Per-image loss weight ``(n_images,)``: ``unverified_weight`` for unverified clips, else 1."""
    w = np.ones(len(ds.table), dtype=np.float32)
    if has_verified(ds.table):
        unverified = ds.table["manually_verified"].fillna(1).astype(int).to_numpy() == 0
        w[unverified] = unverified_weight
    return w


# ------------------------------------------------------------------------------------- crops
def crop_width(cfg: SpectrogramConfig, crop_seconds: float | None, max_width: int) -> int:
    """Columns in a training crop: ``crop_seconds`` of frames, at most the widest image."""
    if crop_seconds is None:
        return max_width
    if crop_seconds <= 0:
        raise ClassifyError(f"crop_seconds={crop_seconds} must be > 0")
    return max(8, min(max_width, seconds_to_columns(crop_seconds, sr=cfg.sr, hop_length=cfg.hop_length)))


class CropDataset(torch.utils.data.Dataset):
    """Items ``(uint8 (C, H, width), target (n_classes + 1,))`` cut from in-memory images.

    ``train``: a random window (narrower images placed at a random offset in a zero canvas:
    silence at ``vmin``); otherwise the centre window (narrower images centred). Both by
    :func:`spec2img.window.crop_offset` and :func:`spec2img.window.take`.
    """

    def __init__(self, images: list[torch.Tensor], targets: np.ndarray, weights: np.ndarray, *,
                 width: int, train: bool):
        self.images = images
        self.y = torch.from_numpy(np.concatenate([targets, weights[:, None]], axis=1).astype(np.float32))
        self.width, self.train = width, train

    def __len__(self) -> int:
        return len(self.images)

    def new_empty(self) -> CropDataset:
        """An empty copy (fastai's ``Learner.export`` drops the data this way)."""
        k = self.y.shape[1] - 1
        return CropDataset([], np.zeros((0, k), np.float32), np.zeros(0, np.float32), width=self.width,
                           train=self.train)

    def __getitem__(self, i: int):
        img = self.images[i]
        start = crop_offset(img.shape[-1], size=self.width, crop="random" if self.train else "center",
                            rng=_TORCH_INTEGERS)
        return torch.from_numpy(take(img.numpy(), start=start, size=self.width)), self.y[i]


class _TorchIntegers:
    """:func:`spec2img.window.crop_offset`'s random source, drawn from torch's generator (seeded
    by ``fit``; one stream per DataLoader worker)."""

    @staticmethod
    def integers(low: int, high: int) -> int:
        return int(torch.randint(low, high, ()).item())


_TORCH_INTEGERS = _TorchIntegers()
