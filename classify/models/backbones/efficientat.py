"""EfficientAT's AudioSet MobileNetV3 ("mn04_as", Schmid et al., ICASSP 2023) in this project's code.

The network is torchvision's MobileNetV3-Large layout at width 0.4 with a 1-channel stem, built
from torchvision's blocks (as :mod:`classify.models.backbones.mobilenet_blocks` writes them, so that
loading the model does not import torchvision). What differs from ``torchvision.models.mobilenet_v3_large`` (and
why its unmodified code gives other logits for the same weights):

- squeeze-excitation gates with a **sigmoid**, not torchvision's hard-sigmoid (same bottleneck:
  ``make_divisible(expanded // 4, 8)``, ReLU inside, after the depthwise convolution);
- the stem takes 1 channel: a log-mel spectrogram, not an RGB image;
- 527 AudioSet logits; the 384-value embedding is the global average of the last feature map.

Input: ``(B, 1, 128, T)`` float log-mel **values** of the ``efficientat`` spectrogram preset
(``(ln(mel + 1e-5) + 4.5) / 5``, mel band 0 = lowest frequency at index 0), any ``T`` >= 1;
images from spec2img become values by :func:`spec2img.image.to_values` (inside
:class:`classify.models.classifier.AudioClassifier`) and band order by :func:`efficientat_body`'s flip.
Output: logits ``(B, 527)``.

The pretrained file ``mn04_as_mAP_432.pt`` (MIT licence, (c) 2022 Florian Schmid) is fetched by
:mod:`classify.models.backbones.weights`; :func:`load_efficientat_state_dict` maps its keys onto this model.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from ...errors import WeightsError
from .mobilenet_blocks import BlockConfig, Conv2dNormActivation, InvertedResidual, SqueezeExcitation, make_divisible

N_MELS = 128
N_CLASSES = 527  # AudioSet
WIDTH_MULT = 0.4  # "mn04"
EMBED_DIM = 384  # 6 * 64 channels after the last 1x1 convolution at width 0.4
HIDDEN_DIM = 512  # 1280 * 0.4, the classifier's hidden layer

# MobileNetV3-Large, Table 1 of Howard et al. 2019 (before width scaling):
# input channels, kernel, expanded channels, output channels, squeeze-excitation, activation, stride
_LARGE = [
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
]


class EfficientATMN(nn.Module):
    """EfficientAT MobileNet: ``features`` (the body) then ``classifier`` (the head).

    Args:
        num_classes: outputs of the last linear layer (527 for the AudioSet weights).
        width_mult: channel multiplier (0.4 for ``mn04``).
        dropout: dropout before the last linear layer.

    Shapes: ``features`` maps ``(B, 1, 128, T)`` to ``(B, 384, 4, ceil(T / 32))``;
    :meth:`embed` pools that to ``(B, 384)``; ``classifier`` maps ``(B, 384)`` to
    ``(B, num_classes)``. For fine-tuning, ``features`` is the body to freeze/unfreeze and
    ``classifier`` (or a new head on the 384-value embedding) the head.
    """

    def __init__(self, num_classes: int = N_CLASSES, *, width_mult: float = WIDTH_MULT, dropout: float = 0.2):
        super().__init__()
        # EfficientAT's own BatchNorm settings (parity with the original); fine-tuning resets the
        # momentum for every backbone in classify.models.classifier.build_model
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        setting = [BlockConfig.from_row(*row, width_mult) for row in _LARGE]
        sigmoid_se = partial(SqueezeExcitation, scale_activation=nn.Sigmoid)
        hswish = nn.Hardswish
        stem = setting[0].input_channels
        last_in = setting[-1].out_channels
        self.embed_dim = 6 * last_in
        hidden = make_divisible(1280 * width_mult, 8)
        self.features = nn.Sequential(
            Conv2dNormActivation(1, stem, kernel_size=3, stride=2, norm_layer=norm, activation_layer=hswish),
            *[InvertedResidual(cnf, norm, se_layer=sigmoid_se) for cnf in setting],
            Conv2dNormActivation(last_in, self.embed_dim, kernel_size=1, norm_layer=norm, activation_layer=hswish),
        )
        self.classifier = nn.Sequential(
            nn.Linear(self.embed_dim, hidden),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """Last feature map [shape=(B, 384, F', T')] of log-mel input [shape=(B, 1, 128, T)]."""
        return self.features(x)

    def embed(self, x: Tensor) -> Tensor:
        """The 384-value embedding [shape=(B, 384)]: time-frequency mean of the last feature map."""
        return self.forward_features(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Logits [shape=(B, num_classes)]; apply a sigmoid for AudioSet tag probabilities."""
        return self.classifier(self.embed(x))


def convert_state_dict(original: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename EfficientAT's keys to :class:`EfficientATMN`'s (pure; tensors are not copied).

    ``classifier.2``/``classifier.5`` (after EfficientAT's pool and flatten) become
    ``classifier.0``/``classifier.3``; the ``conc_se_layers.0.`` infix of its concurrent
    squeeze-excitation wrapper is dropped, and its linear SE weights ``(out, in)`` are viewed as
    1x1 convolutions ``(out, in, 1, 1)``.
    """
    out = {}
    for key, value in original.items():
        key = key.replace("conc_se_layers.0.", "")
        key = key.replace("classifier.2.", "classifier.0.").replace("classifier.5.", "classifier.3.")
        if (".fc1.weight" in key or ".fc2.weight" in key) and value.ndim == 2:
            value = value[:, :, None, None]
        out[key] = value
    return out


def load_efficientat_state_dict(path: Path) -> dict[str, Tensor]:
    """Read an EfficientAT checkpoint (``mn04_as_mAP_432.pt``) as :class:`EfficientATMN` keys."""
    path = Path(path)
    try:
        original = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file; pass the path of mn04_as_mAP_432.pt") from None
    except Exception as exc:  # torch raises pickle/zip/runtime errors of many types for a bad file
        raise WeightsError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}); "
            "download mn04_as_mAP_432.pt again"
        ) from None
    if isinstance(original, dict) and "model" in original and isinstance(original["model"], dict):
        original = original["model"]
    if not isinstance(original, dict) or not all(isinstance(v, Tensor) for v in original.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors; expected EfficientAT's mn04_as_mAP_432.pt")
    return convert_state_dict(original)


def efficientat_mn04(weights: Path | None = None, *, num_classes: int = N_CLASSES) -> EfficientATMN:
    """Build ``mn04``; with ``weights`` load that checkpoint (a new head when ``num_classes != 527``).

    Returns the model in eval mode. A state dict that does not fit raises :class:`WeightsError`.
    """
    model = EfficientATMN(num_classes=num_classes)
    if weights is not None:
        state = load_efficientat_state_dict(weights)
        if num_classes != N_CLASSES:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.3.")}
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # size mismatch: another width or class count
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise WeightsError(f"{weights}: does not fit EfficientAT mn04 ({first}); use mn04_as_mAP_432.pt") from None
        missing = [k for k in result.missing_keys if not (num_classes != N_CLASSES and k.startswith("classifier.3."))]
        if missing or result.unexpected_keys:
            bad = (missing or result.unexpected_keys)[0]
            raise WeightsError(
                f"{weights}: does not fit EfficientAT mn04 ({len(missing)} missing, "
                f"{len(result.unexpected_keys)} unexpected keys, e.g. {bad}); use mn04_as_mAP_432.pt"
            )
    return model.eval()


def pretrained_mn04(weights: Path | None = None, *, num_classes: int = N_CLASSES) -> EfficientATMN:
    """AudioSet-pretrained ``mn04`` in eval mode, its file found by :func:`~.weights.resolve_weights`.

    ``weights`` (``--weights FILE``) wins over ``$SPEC2IMG_EFFICIENTAT_WEIGHTS``, the torch hub
    cache and a download, in that order.
    """
    from .weights import resolve_weights

    return efficientat_mn04(resolve_weights(weights), num_classes=num_classes)


class FlipFrequency(nn.Module):
    """Reverse the frequency axis (dim 2): image row order (highest band first) <-> band order."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flip(2)


def efficientat_body(pretrained: bool, weights_file: Path | None = None) -> tuple[nn.Module, int]:
    """Backbone factory for ``classify.models.archs``: ``(body, 384)``.

    ``body`` maps log-mel **values** in image row order, ``(B, 1, 128, T)`` with the highest band
    in row 0 (what ``vmin + pixels / 255 * (vmax - vmin)`` of a spec2img image gives), to the last
    feature map ``(B, 384, 4, ceil(T / 32))``. It flips the rows back to band order itself.
    ``weights_file`` is loaded even when ``pretrained`` is False (as for the other backbones).
    """
    model = pretrained_mn04(weights_file) if pretrained or weights_file is not None else EfficientATMN()
    return nn.Sequential(FlipFrequency(), model.features), model.embed_dim
