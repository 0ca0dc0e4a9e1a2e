"""What ``model.json`` holds (:class:`ModelInfo`: enough to rebuild a trained network and feed
it) and its one checked reader (:func:`check_model_info`). Written and read through
:mod:`classify.runfolder`; importing this module loads no torch."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RunFolderError


@dataclass(frozen=True)
class ModelInfo:
    """What ``model.json`` holds: enough to rebuild the network and feed it."""

    arch: str
    n_classes: int
    in_channels: int
    input_height: int | None
    dropout: float
    hidden: int
    crop_width: int
    multi_label: bool
    threshold: float | None = None
    head: str = "pool"
    cut: int = 0
    pool: str = "mean"
    #: ``SpectrogramConfig.digest()`` of the images the model was trained on; a run folder whose
    #: spectrogram.json says otherwise is refused (None: written before it was recorded, unchecked)
    spectrogram_digest: str | None = None
    #: a blended run (:class:`~classify.models.blend.Blend`, kept when the average of the probe and
    #: the fine-tune scored best on the inner split): the probe member's own fields; the fields above
    #: are the fine-tune's, and ``crop_width``, ``threshold`` the blend's. None: one network
    probe: ModelInfo | None = None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


# model.json key -> (check, what it must be); ``head`` is checked against classify.models.classifier.HEADS
_MODEL_CHECKS = {
    "arch": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "n_classes": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "in_channels": (lambda v: v in (1, 3) and _is_int(v), "1 or 3"),
    "input_height": (lambda v: v is None or (_is_int(v) and 1 <= v <= 4096), "null or an integer 1..4096"),
    "dropout": (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    "hidden": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "crop_width": (lambda v: _is_int(v) and 1 <= v <= 1_000_000, "a positive integer (image columns)"),
    "multi_label": (lambda v: isinstance(v, bool), "true or false"),
    "threshold": (lambda v: v is None or (_is_num(v) and 0 <= v <= 1), "null or a number in [0, 1]"),
    "cut": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "pool": (lambda v: isinstance(v, str), "a string"),
    "spectrogram_digest": (lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-f]{1,64}", v)),
                           "null or a hex digest"),
}


def check_model_info(path: Path, data) -> ModelInfo:
    """``model.json`` as a :class:`ModelInfo`, every key checked (a blend's ``probe`` too, as
    ``probe.<key>``); :class:`RunFolderError` naming the file and the key otherwise."""
    return _check(path, data, "")


def _check(path: Path, data, where: str) -> ModelInfo:
    if not isinstance(data, dict):
        if where:
            raise RunFolderError(f"{path}: {where[:-1]} must be null or a JSON object; re-run classify fit")
        raise RunFolderError(f"{path}: not a JSON object; re-run classify fit")
    fields = {f.name: f for f in dataclasses.fields(ModelInfo)}
    unknown = sorted(set(data) - set(fields))
    missing = sorted(n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING)
    if unknown or missing:
        what = "; ".join(x for x in (unknown and f"unknown key(s) {', '.join(unknown)}",
                                     missing and f"missing key(s) {', '.join(missing)}") if x)
        raise RunFolderError(f"{path}: unreadable run files ({where and where[:-1] + ': '}{what}); re-run classify fit "
                             "(or use the classify version that wrote it)")
    from .classifier import HEADS

    checks = {**_MODEL_CHECKS, "head": (lambda v: v in HEADS, f"one of {', '.join(HEADS)}")}
    probe = data.get("probe")
    if probe is not None:
        if where:  # a blend of blends is not a thing fit writes
            raise RunFolderError(f"{path}: {where}probe must be null; re-run classify fit")
        probe = _check(path, probe, "probe.")
    for key, value in data.items():
        if key == "probe":
            continue
        ok, want = checks[key]
        if not ok(value):
            raise RunFolderError(f"{path}: {where}{key}={value!r} must be {want}; re-run classify fit")
    info = ModelInfo(**{**data, "probe": probe})
    for key in ("n_classes", "in_channels", "multi_label", "spectrogram_digest"):  # one input, one output
        if probe is not None and getattr(probe, key) != getattr(info, key):
            raise RunFolderError(f"{path}: probe.{key}={getattr(probe, key)!r} but {key}={getattr(info, key)!r}; "
                                 "the members of a blended run must agree, re-run classify fit")
    return info
