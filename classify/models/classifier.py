"""The network as plain torch: :class:`AudioClassifier` = input adapter + body + head.

The model takes what the images hold: float pixels scaled to [0, 1], ``(B, C, n_rows, frames)``,
any width. It normalises and adapts channels itself, so prediction and ONNX export need nothing
but ``model.pt`` and the constructor arguments saved in ``train.json``.

Grey input to an RGB-pretrained backbone: the first convolution's kernels are summed over their
input channels (timm's ``adapt_input_conv``). A grey image repeated three times gives every
channel the same values, so ``sum_c w_c * x`` is what the pretrained filter computed on the
repeated image (normalised with the channel-averaged mean/std) -- the same function, at a third of
the first layer's cost and without materialising a 3-channel copy of every batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spec2img.image import to_values
from spec2img.window import Windows, plan_windows

from .archs import ArchSpec


def adapt_first_conv(body: nn.Module, in_channels: int) -> bool:
    """Give the first ``Conv2d`` of ``body`` ``in_channels`` inputs; True if it changed.

    1 channel from 3: kernels summed over channels. Other counts: the summed kernel repeated and
    rescaled by ``3 / in_channels`` (timm's rule).
    """
    conv = next((m for m in body.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.in_channels == in_channels:
        return False
    with torch.no_grad():
        w = conv.weight.sum(dim=1, keepdim=True)
        if in_channels > 1:
            w = w.repeat(1, in_channels, 1, 1) * (conv.in_channels / in_channels) / conv.in_channels
        conv.weight = nn.Parameter(w.contiguous())
    conv.in_channels = in_channels
    return True


# TF-ported backbones (EfficientNet-Lite, EfficientAT) carry BatchNorm momentum 0.01, tuned for a
# million pretraining steps. Fine-tuning runs a few hundred: at 0.01 the running statistics lag the
# batch statistics the weights adapt to, and evaluation-mode outputs collapse (esc50-dev,
# efficientnet_lite0: validation loss rising from epoch 1 while training loss fell). torchvision
# and fastai use 0.1; so do we, for every backbone (EfficientAT on esc50-dev fold 1: 92.2% at 0.01,
# 98.0% at 0.1). Frozen / eval use is unaffected.
FINE_TUNE_BN_MOMENTUM = 0.1


def set_bn_momentum(module: nn.Module, momentum: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


class PoolHead(nn.Module):
    """Feature map ``(B, F, h, w)`` -> logits ``(B, n_classes)``.

    Mean over frequency (rows), then max and mean over time concatenated ``(B, 2F)``,
    BatchNorm, dropout, ``Linear(2F, hidden)``, ReLU, BatchNorm (the embedding, ``(B, hidden)``),
    dropout, ``Linear(hidden, n_classes)``.
    """

    def __init__(self, n_features: int, n_classes: int, *, hidden: int = 512, dropout: float = 0.5,
                 **_unused):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm1d(2 * n_features), nn.Dropout(dropout / 2),
                                 nn.Linear(2 * n_features, hidden), nn.ReLU(inplace=True),
                                 nn.BatchNorm1d(hidden))
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, n_classes)

    def embed(self, fmap: torch.Tensor) -> torch.Tensor:
        x = fmap.mean(dim=2)  # (B, F, w)
        x = torch.cat([x.amax(dim=2), x.mean(dim=2)], dim=1)
        return self.pre(x)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.embed(fmap)))


GEM_P = 3.0  # generalised-mean exponent (Radenovic et al. 2018): between mean (1) and max


def gem(fmap: torch.Tensor, p: float = GEM_P, eps: float = 1e-6) -> torch.Tensor:
    """``(B, F, h, w) -> (B, F)``: ``mean(clamp(x, eps) ** p) ** (1 / p)`` over time and frequency."""
    return fmap.float().clamp_min(eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


POOLS = ("mean", "gem")


class LinearHead(nn.Module):
    """Feature map ``(B, F, h, w)`` -> pooled over time and frequency ``(B, F)`` -> standardised
    with fixed ``shift``/``scale`` buffers (the embedding) -> ``Linear(F, n_classes)``.

    The ``--head-only`` head: a fitted ``StandardScaler -> LogisticRegression`` folded into torch,
    so a head-only run folder loads and predicts like any other. ``pool``: ``"mean"`` (EfficientAT's
    embedding) or ``"gem"`` (:func:`gem`, for mid-level ImageNet maps whose mean is mostly
    background).
    """

    def __init__(self, n_features: int, n_classes: int, *, pool: str = "mean", **_unused):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r}: choose one of {POOLS}")
        self.pool_kind = pool
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.fc = nn.Linear(n_features, n_classes)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(B, F)``: the pooled map, before standardising."""
        return gem(fmap) if self.pool_kind == "gem" else fmap.mean(dim=(2, 3))

    def embed(self, fmap: torch.Tensor) -> torch.Tensor:
        return (self.pool(fmap) - self.shift) / self.scale

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(fmap))


# Head kinds by name (recorded as ``head`` in model.json).
HEADS = {"pool": PoolHead, "linear": LinearHead}


class AudioClassifier(nn.Module):
    """``forward(x)``: x float ``(B, C, H, W)`` in [0, 1] -> logits ``(B, n_classes)``.

    Args:
        body: backbone returning a feature map.
        head: a head of :data:`HEADS` (``embed(fmap)`` and ``fc``).
        mean, std: per-channel normalisation (length ``body_channels``), or None.
        in_channels: channels of the images (1 grey, 3 deltas/colormap).
        input_height: if set, the whole image height is resized to it (time axis untouched).
        value_range: ``(vmin, vmax)``; when set, pixels become feature values
            ``vmin + x * (vmax - vmin)`` (:func:`spec2img.image.to_values`, the one pixel -> value
            mapping) instead of being normalised (backbones pretrained on raw log-mels).
    """

    def __init__(self, body: nn.Module, head: nn.Module, *, mean=None, std=None, in_channels: int = 1,
                 input_height: int | None = None, value_range: tuple[float, float] | None = None):
        super().__init__()
        self.body, self.head = body, head
        self.in_channels = in_channels
        self.input_height = input_height
        self.value_range = value_range
        if mean is not None:
            mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
            if in_channels == 1 and len(mean_t) > 1:  # grey: the channel-averaged statistics
                mean_t, std_t = mean_t.mean(0, keepdim=True), std_t.mean(0, keepdim=True)
            self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
            self.register_buffer("std", std_t.view(1, -1, 1, 1))
        else:
            self.mean = self.std = None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> the backbone's input scale, height resized if configured."""
        if self.input_height is not None and x.shape[2] != self.input_height:
            x = F.interpolate(x, size=(self.input_height, x.shape[3]), mode="bilinear", align_corners=False)
        if self.value_range is not None:
            lo, hi = self.value_range
            return to_values(x, vmin=lo, vmax=hi, full_scale=1.0)
        if self.mean is not None:
            return (x - self.mean) / self.std
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, hidden)`` (the report's t-SNE input)."""
        return self.head.embed(self.body(self.prepare(x)))

    def head_logits(self, e: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` from :meth:`embed`'s output (eval mode: the head's dropout is off)."""
        return self.head.fc(e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.prepare(x)))


def build_model(spec: ArchSpec, *, n_classes: int, in_channels: int, pretrained: bool,
                weights_file=None, input_height: int | None = None, dropout: float = 0.5,
                hidden: int = 512, value_range: tuple[float, float] | None = None,
                head: str = "pool", cut: int = 0, pool: str = "mean", arch: str = "") -> AudioClassifier:
    """Assemble an :class:`AudioClassifier` from an arch spec (weights loaded per the spec).

    ``head``: a key of :data:`HEADS` (``"linear"`` for ``--head-only``, pooled by ``pool``);
    ``cut``: backbone stages dropped from the end (``--cut``; ``arch`` names it in errors).
    """
    body, n_features = spec.factory(pretrained, weights_file)
    if cut:
        body, n_features = spec.cut(body, cut, arch or "this arch")
    adapt_first_conv(body, in_channels)
    set_bn_momentum(body, FINE_TUNE_BN_MOMENTUM)
    head_module = HEADS[head](n_features, n_classes, hidden=hidden, dropout=dropout, pool=pool)
    return AudioClassifier(body, head_module, mean=spec.mean, std=spec.std, in_channels=in_channels,
                           input_height=input_height,
                           value_range=value_range if spec.raw_values else None)


def cut_windows(images: list[torch.Tensor], *, width: int,
                hop: int | None = None) -> tuple[list[torch.Tensor], Windows]:
    """The model windows of uint8 images ``(C, H, W_i)`` (CPU): ``width`` columns each, by
    :func:`spec2img.window.plan_windows` (hop ``width // 2`` by default, the last window aligned to
    the end, a narrower image centred between zeros). Returns the crops and the plan."""
    plan = plan_windows([img.shape[-1] for img in images], size=width, hop=hop)
    return [torch.from_numpy(c) for c in plan.cut([img.numpy() for img in images])], plan


@torch.no_grad()
def predict_windows(model: nn.Module, images: list[torch.Tensor], *, width: int, hop: int | None = None,
                    bs: int = 64, device: str | torch.device = "cpu",
                    multi_label: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and embeddings of each image, averaged over its time windows.

    ``model``: an :class:`AudioClassifier` or anything with its ``embed`` and ``head_logits``
    (a :class:`~classify.models.blend.Blend`). ``images``: uint8 tensors ``(C, H, W_i)``, windowed by :func:`cut_windows`; the windows'
    probabilities (softmax, or sigmoid if ``multi_label``) and embeddings are averaged per image.
    Returns ``probs`` ``(n, n_classes)`` and ``emb`` ``(n, hidden)``, float32 on CPU.
    """
    crops, plan = cut_windows(images, width=width, hop=hop)
    owner_t = torch.from_numpy(plan.owner)
    model.eval()
    probs, embs = [], []
    for b in range(0, len(crops), bs):
        x = torch.stack(crops[b:b + bs]).to(device).float().div_(255)
        e = model.embed(x)
        logits = model.head_logits(e)
        probs.append((torch.sigmoid(logits) if multi_label else logits.softmax(1)).float().cpu())
        embs.append(e.float().cpu())
    p, e = torch.cat(probs), torch.cat(embs)
    n = len(images)
    counts = torch.bincount(owner_t, minlength=n).clamp_min(1).unsqueeze(1).float()
    P = torch.zeros(n, p.shape[1]).index_add_(0, owner_t, p) / counts
    E = torch.zeros(n, e.shape[1]).index_add_(0, owner_t, e) / counts
    return P, E
