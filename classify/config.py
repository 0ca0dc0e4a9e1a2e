"""The training stage's one configuration object, saved as ``train.json`` in every run folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .augment import AugmentConfig
from .errors import ClassifyError

TRAIN_CONFIG_NAME = "train.json"
MONITORS = ("valid_loss", "accuracy", "lwlrap")
# Below this many clips in the median class, a pretrained backbone is not fine-tuned by default:
# a logistic head on its frozen features scores higher. Measured (README, Benchmarks), head-only
# vs fine-tuned: esc50-dev, ~8 clips a class: 78.6% vs 47.5% (ImageNet lite0), 98.6% vs 92.8%
# (AudioSet); fsdd speaker 1 held out, lite0, training clips a class: 10: 17.0% vs 11.6%;
# 30: 25.6% vs 19.8%; 100: 26.2% vs 26.8%; 270: 27.4% vs 46.0%.
HEAD_ONLY_BELOW = 50


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
    features (:mod:`classify.headonly`), ``head_c`` its inverse L2 strength. None = decide from the
    data (:func:`classify.commands.choose_mode`): head-only for pretrained backbones with fewer
    than ``HEAD_ONLY_BELOW`` clips in the median class, fine-tuning otherwise.
    ``bf16``: bfloat16 autocast for CPU training; None = on where the CPU has native bfloat16.
    ``cut``: backbone stages dropped from the end (fastai's ``cut``, counted in stages); None = the
    arch's choice: 0 for fine-tuning, ``ArchSpec.probe_cut`` for ``head_only`` (whose
    ``input_height=None`` likewise becomes ``ArchSpec.probe_height``). Run folders record the
    resolved values (:meth:`resolved`).
    """

    images: str
    out: str | None = None
    arch: str = "efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None
    epochs: int = 10
    freeze_epochs: int = 2
    lr: float | None = 3e-3
    lr_mult: float = 10.0
    unfrozen_lr: float | None = None
    lr_find_iters: int = 100
    wd: float = 0.01
    bs: int = 32
    crop_seconds: float | None = 5.0
    input_height: int | None = None
    dropout: float = 0.5
    valid_pct: float = 0.2
    valid_fold: int | None = None
    valid_csv: str | None = None
    verified_only: bool = False
    unverified_weight: float = 1.0
    valid_unverified: bool = False
    augment: AugmentConfig = AugmentConfig()
    patience: int = 5
    monitor: str = "valid_loss"
    restore_best: bool = True
    seed: int | None = 0
    bf16: bool | None = None
    channels_last: bool = True
    quiet: bool = False
    export_learner: bool = False
    head_only: bool | None = None
    head_c: float = 1.0
    cut: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig(**self.augment))
        for name in ("epochs", "bs"):
            if getattr(self, name) < 1:
                raise ClassifyError(f"--{name}={getattr(self, name)} must be at least 1")
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
        if not self.head_c > 0:
            raise ClassifyError(f"--head-c={self.head_c} must be > 0 (e.g. 1.0; smaller = stronger L2)")
        if self.cut is not None and self.cut < 0:
            raise ClassifyError(f"--cut={self.cut} must be >= 0 (stages dropped from the backbone's end)")
        if not 0 <= self.dropout < 1:
            raise ClassifyError(f"--dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, folder: Path) -> Path:
        from spec2img.io import write_atomic

        path = Path(folder) / TRAIN_CONFIG_NAME
        write_atomic(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        return path

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        path = Path(path)
        if path.is_dir():
            path = path / TRAIN_CONFIG_NAME
        return cls.from_dict(json.loads(path.read_text()))

    def resolved(self) -> TrainConfig:
        """This config with ``cut`` (and, for ``head_only``, ``input_height``) decided: see the
        class docstring."""
        from .archs import get_arch

        changes = {}
        if self.cut is None:
            changes["cut"] = get_arch(self.arch).probe_cut if self.head_only else 0
        if self.head_only and self.input_height is None:
            changes["input_height"] = get_arch(self.arch).probe_height
        return self.replace(**changes) if changes else self

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
