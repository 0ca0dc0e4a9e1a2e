"""Batch augmentations that respect what a spectrogram means (pure torch, vectorised).

Inputs are float batches ``x`` ``(B, C, H, W)`` (H = frequency rows, W = time frames) and soft
targets ``y`` ``(B, K)``. Nothing here flips, rotates or warps the frequency axis: time shift
(circular roll), SpecAugment-style time and frequency masks (filled with 0, the silence level of
the image), mixup, a time stretch (speaking rate) and frequency-wise MixStyle (EfficientAT's
``freq-mixstyle``: each frequency row's level and spread taken partly from another example, as
another microphone, room or voice would colour it). Every random draw is made on ``x``'s device
(no host sync).
"""

from __future__ import annotations

import torch

from ..config import AugmentConfig  # noqa: F401  (re-exported: the config lives with TrainConfig)


def _band_mask(n: int, size: int, max_len: int, count: int, device) -> torch.Tensor:
    """``(n, size)`` bool: ``count`` random bands of length ``0..max_len`` per row."""
    mask = torch.zeros(n, size, dtype=torch.bool, device=device)
    if max_len < 1 or count < 1:
        return mask
    pos = torch.arange(size, device=device)
    for _ in range(count):
        length = torch.randint(0, max_len + 1, (n, 1), device=device)
        start = (torch.rand(n, 1, device=device) * (size - length + 1)).long()
        mask |= (pos >= start) & (pos < start + length)
    return mask


def mask_time_freq(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Zero random time columns and frequency rows per example (SpecAugment)."""
    B, _, H, W = x.shape
    t = _band_mask(B, W, int(cfg.time_mask_frac * W), cfg.time_masks, x.device)
    f = _band_mask(B, H, int(cfg.freq_mask_frac * H), cfg.freq_masks, x.device)
    keep = ~(t[:, None, None, :] | f[:, None, :, None])
    return x * keep


def roll_time(x: torch.Tensor) -> torch.Tensor:
    """Circular shift of each example along time by a random amount (one gather, no loop)."""
    B, C, H, W = x.shape
    shift = torch.randint(0, W, (B, 1), device=x.device)
    idx = (torch.arange(W, device=x.device)[None] - shift) % W
    return x.gather(3, idx[:, None, None, :].expand(B, C, H, W))


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Convex combination with a shuffled batch, ``lam ~ Beta(alpha, alpha)``, ``lam >= 0.5``
    (per example), applied to images and soft targets alike."""
    B = x.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((B,)).to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(B, device=x.device)
    lx = lam.view(B, 1, 1, 1).to(x.dtype)
    ly = lam.view(B, 1).to(y.dtype)
    return x * lx + x[perm] * (1 - lx), y * ly + y[perm] * (1 - ly)


def freq_mixstyle(x: torch.Tensor, p: float, alpha: float, eps: float = 1e-6) -> torch.Tensor:
    """Frequency-wise MixStyle (Schmid et al., EfficientAT / CP-JKU DCASE 2023; Zhou et al. 2021's
    MixStyle on frequency statistics): with probability ``p`` per example, each frequency row is
    normalised by its own mean and standard deviation (over channels and time) and given a convex
    mix, ``lam ~ Beta(alpha, alpha)``, of its own and a shuffled example's. Labels are unchanged.
    EfficientAT draws one coin for the whole batch; here each example draws its own (same expected
    share, no host sync).
    """
    B = x.shape[0]
    if p <= 0 or B < 2:
        return x
    mu = x.mean(dim=(1, 3), keepdim=True)
    sig = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt()
    lam = torch.distributions.Beta(alpha, alpha).sample((B,)).to(x.device)
    lam = torch.where(torch.rand(B, device=x.device) < p, lam, torch.ones_like(lam)).view(B, 1, 1, 1).to(x.dtype)
    perm = torch.randperm(B, device=x.device)
    mu_mix = mu * lam + mu[perm] * (1 - lam)
    sig_mix = sig * lam + sig[perm] * (1 - lam)
    return (x - mu) / sig * sig_mix + mu_mix


def time_stretch(x: torch.Tensor, max_stretch: float) -> torch.Tensor:
    """Each example's time axis stretched about the crop's centre by its own factor in
    ``[1 - max_stretch, 1 + max_stretch]`` (linear interpolation, one ``grid_sample``): a slower or
    faster speaker, a longer or shorter event; frames pulled in from outside the crop are silence (0).
    Frequency rows are untouched."""
    B = x.shape[0]
    if max_stretch <= 0:
        return x
    r = 1 + (torch.rand(B, device=x.device) * 2 - 1) * max_stretch
    theta = torch.zeros(B, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1 / r  # output column u reads input column u / r (about the centre)
    theta[:, 1, 1] = 1
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_batch(x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Time stretch, frequency MixStyle, roll, masks, then mixup on a training batch."""
    if cfg.stretch > 0:
        x = time_stretch(x, cfg.stretch)
    if cfg.mixstyle > 0:
        x = freq_mixstyle(x, cfg.mixstyle, cfg.mixstyle_alpha)
    if cfg.roll:
        x = roll_time(x)
    if cfg.time_masks or cfg.freq_masks:
        x = mask_time_freq(x, cfg)
    if cfg.mixup > 0 and x.shape[0] > 1:
        x, y = mixup(x, y, cfg.mixup)
    return x, y
