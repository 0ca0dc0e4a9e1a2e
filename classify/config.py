"""The training stage's one configuration object, saved as ``train.json`` in every run folder."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ClassifyError

TRAIN_CONFIG_NAME = "train.json"
#: Facts ``train.json`` holds beside the settings: where the images were (absolute, and from the run folder).
WHERE_KEYS = ("images_absolute", "images_from_run_dir")
#: ``arch`` default: chosen from the images by :func:`classify.commands.choose_arch` (the AudioSet
#: backbone for images of its front-end, spec2img's default; else EfficientNet-Lite0).
AUTO_ARCH = "auto"
MONITORS = ("valid_loss", "accuracy", "lwlrap")
# Below this many clips in the median class, a pretrained backbone is not fine-tuned by default:
# a logistic head on its frozen features. Measured (README, Benchmarks: "Fine-tune or head-only",
# AudioSet backbone, today's defaults), head-only vs fine-tuned: esc50-dev, ~8 clips a class:
# 98.6% vs 88.8%; fsdd speaker 1 held out, training clips a class: 10: 30.2% vs 41.8%; 30: 50.4%
# vs 61.2%; 100: 56.0% vs 67.2%; 270: 51.8% vs 92.2%. The sets cross at different sizes (fsdd is
# far from AudioSet's classes); 50 keeps the probe for small AudioSet-like sets. Since issue 22 this
# is only the shortcut for small sets: from 50 clips on, classify.training.mode scores both on an
# inner split of the training clips and keeps the better.
HEAD_ONLY_BELOW = 50
# Candidate inverse L2 strengths for --head-c auto (chosen on the inner split).
HEAD_C_GRID = (0.01, 0.1, 1.0, 10.0)
# crop_seconds="auto": this percentile of the image widths, rounded up to CROP_STEP_S, within
# [CROP_MIN_S, CROP_MAX_S] (5 s: the AudioSet model's training crop, and esc50's clip length).
CROP_PERCENTILE, CROP_STEP_S, CROP_MIN_S, CROP_MAX_S = 90, 0.5, 1.0, 5.0
#: The one table of which TrainConfig fields only one training mode reads: fine-tuning (fastai's
#: schedule, augmentation, early stopping) or head-only (the logistic head). The report hides the
#: other mode's settings and :func:`ignored_settings` names the ones a user set in vain.
FINE_TUNE_ONLY = frozenset({"epochs", "freeze_epochs", "lr", "lr_mult", "lr_groups", "unfrozen_lr", "lr_find_iters",
                            "wd", "augment", "freeze_bn", "patience", "monitor", "restore_best", "bf16",
                            "channels_last", "dropout", "export_learner", "inner_pct"})
HEAD_ONLY_ONLY = frozenset({"head_c"})


def auto_crop_seconds(widths, sr: int, hop_length: int) -> float:
    """Training crop width in seconds for ``crop_seconds="auto"``: the ``CROP_PERCENTILE``-th
    percentile of the image widths ``widths`` (frames), rounded up to ``CROP_STEP_S``, clamped to
    ``[CROP_MIN_S, CROP_MAX_S]``. Short clips (spoken digits, ~1 s) get ~1 s crops instead of a
    5 s canvas that is mostly padding; 5 s clips keep 5 s."""
    import math

    import numpy as np

    if len(widths) == 0:
        return CROP_MAX_S
    seconds = float(np.percentile(np.asarray(widths, float), CROP_PERCENTILE)) * hop_length / sr
    seconds = math.ceil(seconds / CROP_STEP_S - 1e-9) * CROP_STEP_S
    return float(min(CROP_MAX_S, max(CROP_MIN_S, seconds)))


@dataclass(frozen=True)
class AugmentConfig:
    """Defaults: 2 time masks of up to 10% of the width, 2 frequency masks of up to 10% of the
    rows, circular time roll anywhere, mixup with Beta(0.4, 0.4) on every batch."""

    time_masks: int = 2
    time_mask_frac: float = 0.1
    freq_masks: int = 2
    freq_mask_frac: float = 0.1
    roll: bool = True
    mixup: float = 0.4  # Beta(alpha, alpha); 0 disables
    mixstyle: float = 0.0  # frequency-wise MixStyle: share of examples restyled; 0 disables
    mixstyle_alpha: float = 0.3  # its Beta(alpha, alpha) (EfficientAT's default)
    stretch: float = 0.0  # time axis stretched by a factor in [1 - stretch, 1 + stretch] per example; 0 disables

    def __post_init__(self):
        if self.mixup < 0:
            raise ClassifyError(f"--mixup={self.mixup} must be >= 0 (0 disables; 0.4 is the default)")
        if not 0 <= self.mixstyle <= 1:
            raise ClassifyError(f"--mixstyle={self.mixstyle} must be a share in [0, 1] (0 disables)")
        if not 0 <= self.stretch < 1:
            raise ClassifyError(f"--stretch={self.stretch} must be in [0, 1) (0.2: 80-120% speed; 0 disables)")
        if self.mixstyle_alpha <= 0:
            raise ClassifyError(f"mixstyle_alpha={self.mixstyle_alpha} must be > 0 (EfficientAT uses 0.3)")

    @classmethod
    def none(cls) -> AugmentConfig:
        """Every augmentation off (``--no-augment``)."""
        return cls(time_masks=0, freq_masks=0, roll=False, mixup=0.0, mixstyle=0.0, stretch=0.0)

    @property
    def active(self) -> bool:
        return bool(self.time_masks or self.freq_masks or self.roll or self.mixup or self.mixstyle
                    or self.stretch)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``classify fit`` needs besides the images.

    Schedule: ``fit_one_cycle(freeze_epochs, lr)`` with the body frozen, then
    ``fit_one_cycle(epochs, slice(u / lr_mult, u))`` unfrozen with ``u = unfrozen_lr`` (default
    ``lr / 2``), the learning rate spread
    geometrically over three parameter groups (early body, late body, head), as fastai's
    ``fine_tune`` does. ``lr=None`` means "run lr_find and use its suggestion" (``--lr auto``).
    Crops: ``crop_seconds`` of frames (at most the widest image; None = whole width).
    ``head_only``: no fine-tuning; a logistic-regression head on the frozen backbone's pooled
    features (:mod:`classify.training.headonly`), ``head_c`` its inverse L2 strength (None: chosen on the
    inner split from :data:`HEAD_C_GRID`). None = decide from the
    data (:func:`classify.commands.choose_mode`): head-only for pretrained backbones with fewer
    than ``HEAD_ONLY_BELOW`` clips in the median class (the shortcut), fine-tuning without pretrained
    weights, else both scored on an inner split and the better kept (:mod:`classify.training.mode`).
    ``bf16``: bfloat16 autocast for CPU training; None = on where the CPU has native bfloat16
    (GPUs: bfloat16 autocast where the GPU has it, else fp16 with loss scaling).
    ``gpu_bs``: the batch size on a GPU (None: ``bs`` everywhere), at most an eighth of the
    training images; the learning rates are then multiplied by ``sqrt(batch / bs)`` and
    ``lr_rule`` records the batch and factor applied (:func:`classify.training.loop.batch_for_device`).
    ``cut``: backbone stages dropped from the end (fastai's ``cut``, counted in stages); None = the
    arch's choice: 0 for fine-tuning, ``ArchSpec.probe_cut`` for ``head_only`` (whose
    ``input_height=None`` likewise becomes ``ArchSpec.probe_height``). Run folders record the
    resolved values (:meth:`resolved`).

    Honest scoring: the validation fold is scored and never used for a choice. The default
    schedule is fixed (``patience=0``, ``restore_best=False``: the last epoch's weights are kept).
    A choice made from data (``patience`` > 0, ``restore_best``, ``head_c=None``, a multi-label
    threshold) is made on an *inner* split, ``inner_pct`` of the training clips (grouped and
    stratified like the outer split, :func:`classify.data.splits.inner_split`), which is then not
    trained on; a multi-label threshold without an inner split is the fixed 0.5. lr_find
    (``lr=None``) reads only training batches. ``metrics.json`` says what was scored on what.
    ``crop_seconds="auto"``: from the image widths (:func:`auto_crop_seconds`).
    Recipe (:mod:`classify.training.recipe`): ``lp_ft`` starts a linear head from the logistic probe
    and skips the frozen phase; ``ema_epochs`` > 0 keeps an exponential moving average of the
    weights over the unfrozen epochs (horizon in epochs), which is what is scored and saved.
    ``relabel`` / ``drop``: CSVs (``suspect_labels.csv`` layout: ``file``, ``suggested``) applied when
    the images are loaded (:func:`classify.data.imageset.apply_label_edits`); recorded as absolute paths.
    """

    images: str
    out: str | None = None
    arch: str = "auto"
    pretrained: bool = True
    weights: str | None = None
    # epochs 16 and lr 1.2e-2 (head phase; the unfrozen body gets 6e-3 at the top, 6e-4 at the
    # bottom): measured on fsdd speaker folds against 20 epochs and 3e-3, 6e-3 and 2.4e-2 (README,
    # issue 13); only fine-tuning uses them
    epochs: int = 16
    freeze_epochs: int = 2
    lr: float | None = 1.2e-2
    lr_mult: float = 10.0
    # the body's parameters in depth order cut into lr_groups - 1 groups, plus the head: rates spread
    # geometrically from unfrozen_lr / lr_mult (earliest) to unfrozen_lr (head); 3 = fastai's fine_tune
    # shape, more = layer-wise decay (classify.training.train.layer_groups)
    lr_groups: int = 3
    unfrozen_lr: float | None = None
    lr_find_iters: int = 100
    wd: float = 0.01
    bs: int = 32
    # on a GPU: this batch (at most n_train / 8), lrs x sqrt(batch / bs); lr_rule records what was
    # applied (classify.training.loop.batch_for_device)
    gpu_bs: int | None = 256
    lr_rule: str | None = None
    crop_seconds: float | str | None = "auto"
    input_height: int | None = None
    dropout: float = 0.5
    valid_pct: float = 0.2
    valid_fold: int | None = None
    valid_csv: str | None = None
    verified_only: bool = False
    unverified_weight: float = 1.0
    valid_unverified: bool = False
    augment: AugmentConfig = AugmentConfig()
    patience: int = 0
    monitor: str = "valid_loss"
    restore_best: bool = False
    inner_pct: float = 0.15
    seed: int | None = 0
    bf16: bool | None = None
    channels_last: bool = True
    quiet: bool = False
    export_learner: bool = False
    head_only: bool | None = None
    head_c: float | None = 1.0
    cut: int | None = None
    relabel: str | None = None
    drop: str | None = None
    lp_ft: bool = False
    ema_epochs: float = 0.0
    # the body's BatchNorm layers kept in eval mode while training: pretrained running statistics
    freeze_bn: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig(**self.augment))
        for name in ("epochs", "bs"):
            if getattr(self, name) < 1:
                raise ClassifyError(f"--{name}={getattr(self, name)} must be at least 1")
        if self.lr_groups < 2:
            raise ClassifyError(f"--lr-groups={self.lr_groups} must be at least 2 (the body and the head)")
        if self.freeze_epochs < 0:
            raise ClassifyError(f"--freeze-epochs={self.freeze_epochs} must be >= 0")
        if self.lr is not None and not 0 < self.lr < 10:
            raise ClassifyError(f"--lr={self.lr} must be a positive learning rate (e.g. 3e-3) or 'auto'")
        if not 0 <= self.unverified_weight <= 1:
            raise ClassifyError(f"--unverified-weight={self.unverified_weight} must be in [0, 1]")
        if self.monitor not in MONITORS:
            raise ClassifyError(f"--monitor {self.monitor!r}: choose one of {', '.join(MONITORS)}")
        if self.unfrozen_lr is not None and not 0 < self.unfrozen_lr < 10:
            raise ClassifyError(f"--unfrozen-lr={self.unfrozen_lr} must be a positive learning rate (e.g. 1e-4)")
        if self.head_c is not None and not self.head_c > 0:
            raise ClassifyError(f"--head-c={self.head_c} must be > 0 (e.g. 1.0; smaller = stronger L2)")
        if self.cut is not None and self.cut < 0:
            raise ClassifyError(f"--cut={self.cut} must be >= 0 (stages dropped from the backbone's end)")
        if not 0 < self.inner_pct < 1:
            raise ClassifyError(f"inner_pct={self.inner_pct} must be between 0 and 1 (e.g. 0.15)")
        if isinstance(self.crop_seconds, str) and self.crop_seconds != "auto":
            raise ClassifyError(f"--crop-seconds {self.crop_seconds!r}: give seconds (e.g. 1.5), 'auto' or 'none'")
        if isinstance(self.crop_seconds, (int, float)) and not self.crop_seconds > 0:
            raise ClassifyError(f"--crop-seconds={self.crop_seconds} must be > 0 (or 'auto')")
        if not self.ema_epochs >= 0:
            raise ClassifyError(f"--ema={self.ema_epochs} must be >= 0 (an averaging horizon in epochs; 0 = off)")
        if not 0 <= self.dropout < 1:
            raise ClassifyError(f"--dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, folder: Path) -> Path:
        from spec2img.config import save_config

        # where the images are, from anywhere (absolute) and from a moved run folder (relative to it);
        # read by the report to find thumbnails and audio (not TrainConfig fields: from_dict skips them)
        images = Path(self.images).expanduser().absolute()
        where = dict(zip(WHERE_KEYS, (str(images), os.path.relpath(images, Path(folder).absolute()))))
        return save_config(self, folder, TRAIN_CONFIG_NAME, extra=where)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """``train.json`` (a file, or the run folder holding it) as a checked config."""
        return cls.load_with_where(path)[0]

    @classmethod
    def load_with_where(cls, path: Path) -> tuple[TrainConfig, dict[str, str]]:
        """``train.json`` as a checked config, and where the images were when it was written
        (``images_absolute``, ``images_from_run_dir``: the facts :meth:`save` writes beside the
        settings). Errors name the file."""
        from spec2img.config import read_config

        path, data = read_config(path, TRAIN_CONFIG_NAME, what="training config", make="run classify fit first",
                                 remake="re-run classify fit")
        try:
            cfg = cls.from_dict(data)
        except (ClassifyError, TypeError, ValueError) as exc:
            raise ClassifyError(f"{path}: {exc}; re-run classify fit") from None
        return cfg, {k: data[k] for k in WHERE_KEYS if isinstance(data.get(k), str)}

    def resolved(self, ds=None, train_images=None) -> TrainConfig:
        """This config with ``cut`` (and, for ``head_only``, ``input_height``) decided: see the
        class docstring. With an :class:`~classify.data.imageset.ImageSet` ``ds``, ``crop_seconds="auto"``
        too, from the widths of its images ``train_images`` (indices; default all)."""
        from .models.archs import get_arch

        changes = {}
        if self.crop_seconds == "auto" and ds is not None:
            idx = range(len(ds.images)) if train_images is None else train_images
            widths = [ds.images[i].shape[-1] for i in idx]
            changes["crop_seconds"] = auto_crop_seconds(widths, ds.cfg.sr, ds.cfg.hop_length)
        if self.cut is None and self.head_only is not None:  # undecided: each mode resolves its own
            changes["cut"] = get_arch(self.arch).probe_cut if self.head_only else 0
        if self.head_only and self.input_height is None:
            changes["input_height"] = get_arch(self.arch).probe_height
        return self.replace(**changes) if changes else self

    @property
    def needs_inner_split(self) -> bool:
        """Whether a choice is made from data during training (early stop, best checkpoint)."""
        return self.patience > 0 or self.restore_best

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def ignored_settings(cfg: TrainConfig) -> list[str]:
    """The settings ``cfg`` changes from their defaults that its (decided) mode does not read, as
    flags (``--epochs``); empty when ``cfg.head_only`` is still undecided. See :data:`FINE_TUNE_ONLY`."""
    if cfg.head_only is None:
        return []
    unused = FINE_TUNE_ONLY if cfg.head_only else HEAD_ONLY_ONLY
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(TrainConfig) if f.name in unused}
    flag = {"augment": "--mixup/--time-masks/--freq-masks/--mask-frac/--no-roll/--mixstyle/--stretch/--no-augment"}
    return [flag.get(name, f"--{name.replace('_', '-')}") for name in sorted(unused)
            if getattr(cfg, name) != defaults[name]]


@dataclass(frozen=True)
class CVConfig:
    """``folds`` grouped stratified folds, or the manifest's folds if ``predefined_folds``;
    ``holdout_pct`` of clips held out (grouped) to score the fold ensemble."""

    train: TrainConfig
    folds: int = 5
    predefined_folds: bool = False
    holdout_pct: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
