"""Training batches cut on the training device: the images as one uint8 tensor there (torch only).

:class:`~classify.data.imageset.CropDataset` cuts one crop per item in Python and a DataLoader
collates them on the CPU; :class:`DeviceBatches` keeps every image of a selection in one uint8
tensor ``(C, H, total_frames)`` on the training device (the images laid end to end along time)
and cuts a whole batch with one gather. The crop rule is the same as
:func:`spec2img.window.crop_offset` + :func:`spec2img.window.take`: a random (training) or
centred window of ``width`` frames, and a clip narrower than the window sits at an offset inside a
zero canvas (silence). The random numbers (order and crop starts) come from torch's CPU
generator, one draw per epoch moved to the device at once, so a seed gives the same batches on
every device and no batch waits on the host.
"""

from __future__ import annotations

import math

import torch


def crop_starts(widths: torch.Tensor, size: int, *, train: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Start column of each crop, the rule of :func:`spec2img.window.crop_offset`.

    Args:
        widths: frames of each image ``[shape=(n,)]``, int64 (CPU).
        size: frames in a crop.
        train: random starts in ``[0, w - size]`` (or ``-[0, size - w]`` for a narrower image:
            that many zero columns before it); else the centred start.
        generator: torch CPU generator (default: torch's global one).

    Returns:
        int64 ``[shape=(n,)]`` starts (negative: zero columns padded before the image).
    """
    slack = widths - size
    if not train:
        return torch.where(slack >= 0, slack // 2, -((-slack) // 2))
    u = torch.rand(widths.shape, generator=generator, dtype=torch.float64)
    draw = (u * (slack.abs() + 1)).long().clamp_max(slack.abs())
    return torch.where(slack >= 0, draw, -draw)


def crop_batch(frames: torch.Tensor, offsets: torch.Tensor, widths: torch.Tensor, idx: torch.Tensor,
               starts: torch.Tensor, size: int) -> torch.Tensor:
    """Crops of ``size`` frames of images ``idx`` (one gather; zeros outside an image).

    Args:
        frames: the images end to end, uint8 ``[shape=(C, H, total_frames)]``.
        offsets: first column of each image in ``frames`` ``[shape=(n,)]``.
        widths: frames of each image ``[shape=(n,)]``.
        idx: images to cut ``[shape=(B,)]``; ``starts``: their crop starts ``[shape=(B,)]``
            (all on ``frames``' device).
        size: frames in a crop.

    Returns:
        uint8 ``[shape=(B, C, H, size)]``, equal to ``take(image, start=s, size=size)`` per item.
    """
    col = starts[:, None] + torch.arange(size, device=frames.device)[None]          # (B, size)
    inside = (col >= 0) & (col < widths[idx, None])
    src = (offsets[idx, None] + col).clamp(0, max(frames.shape[-1] - 1, 0))
    x = frames[:, :, src]                                                            # (C, H, B, size)
    x = x * inside[None, None].to(x.dtype)
    return x.permute(2, 0, 1, 3).contiguous()


class DeviceBatches:
    """Batches ``(uint8 (B, C, H, width), target (B, K + 1))`` of one selection, on ``device``.

    Training (``train=True``): a new permutation and random crops every pass; ``drop_last`` drops
    a last partial batch. Otherwise the centred crops of every image, cut once, in order.

    Args:
        images: uint8 ``(C, H, w_i)`` tensors (widths may differ; channels and rows may not).
        targets: ``[shape=(n, K + 1)]`` float32 soft targets then the sample weight.
        width: frames in a crop; ``bs``: batch size; ``device``: where the tensors live.
    """

    def __init__(self, images: list[torch.Tensor], targets: torch.Tensor, *, width: int, bs: int,
                 device: torch.device | str = "cpu", train: bool, drop_last: bool = False):
        self.width, self.bs, self.train, self.drop_last = int(width), int(bs), train, drop_last
        self.device = torch.device(device)
        self.n = len(images)
        self.widths_cpu = torch.tensor([int(im.shape[-1]) for im in images], dtype=torch.long)
        offsets = torch.zeros(self.n, dtype=torch.long)
        if self.n:
            offsets[1:] = torch.cumsum(self.widths_cpu, 0)[:-1]
        self.y = targets.to(self.device, torch.float32)
        self.widths, self.offsets = self.widths_cpu.to(self.device), offsets.to(self.device)
        if self.n:
            self.frames = torch.cat([torch.as_tensor(im) for im in images], dim=-1).to(self.device)
        else:
            self.frames = torch.zeros(0, 0, 0, dtype=torch.uint8, device=self.device)
        self.fixed = None
        if not train and self.n:  # validation: the centred crops, cut once
            starts = crop_starts(self.widths_cpu, self.width, train=False).to(self.device)
            self.fixed = crop_batch(self.frames, self.offsets, self.widths, torch.arange(self.n, device=self.device),
                                    starts, self.width)

    def __len__(self) -> int:
        if self.drop_last and self.train:
            return self.n // self.bs
        return math.ceil(self.n / self.bs)

    def epoch_plan(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This pass's order and crop starts, drawn on the CPU ``[shape=(n,)]`` each."""
        order = torch.randperm(self.n, generator=generator)
        starts = crop_starts(self.widths_cpu[order], self.width, train=True, generator=generator)
        return order, starts

    def __iter__(self):
        if not self.train:
            for i in range(0, self.n, self.bs):
                yield self.fixed[i:i + self.bs], self.y[i:i + self.bs]
            return
        order, starts = (t.to(self.device, non_blocking=True) for t in self.epoch_plan())
        for b in range(len(self)):
            idx, st = order[b * self.bs:(b + 1) * self.bs], starts[b * self.bs:(b + 1) * self.bs]
            yield crop_batch(self.frames, self.offsets, self.widths, idx, st, self.width), self.y[idx]
