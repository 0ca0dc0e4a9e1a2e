"""Backbone bodies that need a torch ``nn.Module`` subclass (kept out of :mod:`classify.models.archs`, so
that the architecture table can be read without importing torch)."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ClassifyError


class EfficientNetLiteBody(nn.Module):
    """efficientnet_lite_pytorch's EfficientNet without pooling/classifier: ``extract_features``.

    Stages as in the EfficientNet paper: the stem, seven MBConv stages (consecutive blocks with
    the same output width), and the 1x1 head convolution to 1280 channels. ``cut(n)`` drops the
    last ``n`` of them, keeping the drop-connect rates the blocks had in the whole network.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        del self.net._fc  # the 1000-class layer is never used
        self.n_blocks = len(net._blocks)  # drop-connect rates are scaled by the full depth
        self.has_head = True

    def stage_ends(self) -> list[int]:
        """Number of blocks up to the end of each MBConv stage."""
        widths = [b._block_args.output_filters for b in self.net._blocks]
        return [i + 1 for i in range(len(widths)) if i + 1 == len(widths) or widths[i + 1] != widths[i]]

    def cut(self, n: int) -> int:
        """Drop the last ``n`` stages (1: the head convolution; 2: and the last MBConv stage...);
        returns the feature count."""
        ends = self.stage_ends()
        if not 0 <= n <= len(ends):
            raise ClassifyError(f"--cut {n}: efficientnet_lite0 has {len(ends) + 1} stages after the stem; "
                                f"cut 0 to {len(ends)}")
        if n == 0:
            return self.net._conv_head.out_channels
        del self.net._conv_head, self.net._bn1
        self.has_head = False
        keep = ends[-n]
        self.net._blocks = self.net._blocks[:keep]
        return self.net._blocks[-1]._block_args.output_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_head:
            return self.net.extract_features(x)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate
        for idx, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * idx / self.n_blocks if rate else rate)
        return x



class TimmBody(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


