"""A model as prediction sees it (:class:`Scorer`), below every backend that builds one.

``classify.prediction.predict`` (torch run folders), ``classify.prediction.onnx_predict`` (onnxruntime) and the Ray and
serve engines all build or consume Scorers; this module imports none of them (numpy + spec2img's
config only), so no two of them need to import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from spec2img.config import SpectrogramConfig


@dataclass(frozen=True)
class Scorer:
    """One model, as prediction sees it.

    ``score(x)``: x uint8 ``(B, C, n_rows, crop_width)`` -> probabilities float32 ``(B, n_classes)``.
    ``unknown_threshold``: a clip whose highest probability is below it is ``unknown``
    (the run's ``openset.json``; None: never).
    """

    name: str
    classes: tuple[str, ...]
    spectrogram: SpectrogramConfig
    crop_width: int
    multi_label: bool
    threshold: float | None
    score: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    unknown_threshold: float | None = None
