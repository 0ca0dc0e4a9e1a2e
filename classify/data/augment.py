"""Batch augmentations that respect what a spectrogram means (pure torch, vectorised).

Inputs are float batches ``x`` ``(B, C, H, W)`` (H = frequency rows, W = time frames) and soft
targets ``y`` ``(B, K)``. Nothing here flips, rotates or warps the frequency axis: time shift
(circular roll), SpecAugment-style time and frequency masks (filled with 0, the silence level of
the image), and mixup.
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


def augment_batch(x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll, mask, then mixup a training batch."""
    if cfg.roll:
        x = roll_time(x)
    if cfg.time_masks or cfg.freq_masks:
        x = mask_time_freq(x, cfg)
    if cfg.mixup > 0 and x.shape[0] > 1:
        x, y = mixup(x, y, cfg.mixup)
    return x, y
