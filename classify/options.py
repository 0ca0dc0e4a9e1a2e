"""Keyword arguments named like ``classify fit`` / ``cv`` flags -> the stage configs
(:class:`~classify.config.TrainConfig`, :class:`~classify.config.CVConfig`), with the same
defaults, and the checks that need no model (:func:`preflight`). Both the Python API
(:mod:`classify.api`) and the CLI go through here. Imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from .config import AUTO_ARCH, AugmentConfig, CVConfig, TrainConfig
from .errors import ClassifyError

#: ``classify fit`` flags (as keyword names) that set :class:`AugmentConfig` fields.
AUGMENT_OPTIONS = {"mixup": ("mixup",), "time_masks": ("time_masks",), "freq_masks": ("freq_masks",),
                   "mask_frac": ("time_mask_frac", "freq_mask_frac"), "roll": ("roll",),
                   "mixstyle": ("mixstyle",), "stretch": ("stretch",)}
#: Flag-named options that are not config fields.
EXTRA_OPTIONS = ("no_augment", "fine_tune")
#: ``classify cv``'s own options (:class:`~classify.config.CVConfig` fields), with their defaults.
CV_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CVConfig) if f.name != "train"}


def train_fields() -> tuple[str, ...]:
    """The :class:`TrainConfig` fields a caller may set (all but ``images`` and ``augment``)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("images", "augment"))


def option_names() -> tuple[str, ...]:
    """Every keyword :func:`train_config` accepts."""
    return (*train_fields(), *AUGMENT_OPTIONS, *EXTRA_OPTIONS, "augment")


def check_names(options: dict, known, what: str) -> None:
    """A :class:`ClassifyError` naming an unknown keyword in ``options`` and the closest known one."""
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see help(classify.fit) for the options"
            raise ClassifyError(f"{what}: unknown option {name!r}; {hint}")


def _words(name: str, value):
    """The CLI's words for a few values: ``lr="auto"``, ``head_c="auto"``, ``crop_seconds="full"``."""
    if name in ("lr", "head_c") and value == "auto":
        return None
    if name == "crop_seconds" and value in ("full", "none"):
        return None
    return value


def train_config(images: str | Path, **options) -> TrainConfig:
    """The :class:`TrainConfig` ``classify fit IMAGES --flag value ...`` builds.

    ``options`` are the flags as keyword names (``--freeze-epochs 0`` is ``freeze_epochs=0``;
    ``--lr auto`` is ``lr="auto"`` or ``lr=None``; ``--fine-tune`` is ``fine_tune=True`` or
    ``head_only=False``; ``--no-augment`` is ``no_augment=True``; ``--mixup``, ``--time-masks``,
    ``--freq-masks``, ``--mask-frac``, ``--no-roll`` (``roll=False``), ``--mixstyle``, ``--stretch``
    set the augmentation, or give a whole ``augment=AugmentConfig(...)``). Defaults are TrainConfig's and AugmentConfig's.

    Raises:
        ClassifyError: an unknown option (naming the closest one) or a bad value (naming the flag).
    """
    check_names(options, option_names(), "classify.fit")
    fine_tune = options.pop("fine_tune", None)
    if fine_tune is not None:
        if options.get("head_only") is not None and options["head_only"] == bool(fine_tune):
            raise ClassifyError("give fine_tune=True or head_only=True, not both")
        options["head_only"] = not fine_tune
    aug = options.pop("augment", None) or AugmentConfig()
    changes = {}
    for name, fields in AUGMENT_OPTIONS.items():
        if name in options:
            changes.update(dict.fromkeys(fields, options.pop(name)))
    aug = dataclasses.replace(aug, **changes) if changes else aug
    if options.pop("no_augment", False):
        aug = AugmentConfig.none()
    values = {k: _words(k, v) for k, v in options.items()}
    if values.get("images") is None:
        values.pop("images", None)
    return TrainConfig(images=str(images), **values, augment=aug)


def cv_config(images: str | Path, **options) -> CVConfig:
    """The :class:`~classify.config.CVConfig` ``classify cv IMAGES ...`` builds: ``folds``,
    ``predefined_folds``, ``holdout_pct`` plus every :func:`train_config` option."""
    own = {k: options.pop(k) for k in CV_DEFAULTS if k in options}
    check_names(options, (*option_names(), *CV_DEFAULTS), "classify.cv")
    return CVConfig(train_config(images, **options), **{**CV_DEFAULTS, **own})


def preflight(cfg: TrainConfig) -> None:
    """Argument and path errors that need no model, answered before torch or fastai load: the
    arch name, the images folder (a spec2img output with a readable ``spectrogram.json``), and the
    files named by ``weights``, ``relabel``, ``drop`` and ``valid_csv``."""
    from .models.archs import get_arch

    if cfg.arch != AUTO_ARCH and not cfg.arch.startswith("timm:"):
        get_arch(cfg.arch)  # one line naming the choices
    images = Path(cfg.images)
    if not images.is_dir():
        what = "a file" if images.exists() else "no such folder"
        raise ClassifyError(f"{images}: {what}; pass the output folder of spec2img AUDIO_DIR IMAGES_DIR")
    from spec2img.config import SpectrogramConfig

    if not (images / "manifest.csv").is_file():
        raise ClassifyError(f"{images}: not a spec2img output folder (no manifest.csv); "
                            "run spec2img AUDIO_DIR IMAGES_DIR first")
    SpectrogramConfig.load(images)  # names the file and key of a bad setting
    for name in ("weights", "relabel", "drop", "valid_csv"):
        value = getattr(cfg, name, None)
        if value and not Path(value).is_file():
            raise ClassifyError(f"--{name.replace('_', '-')} {value}: no such file")
