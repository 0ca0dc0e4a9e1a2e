"""MobileNetV3 building blocks with torchvision's module layout and parameter names.

``torchvision.models.mobilenetv3.InvertedResidual`` and ``torchvision.ops.misc``'s
``Conv2dNormActivation`` / ``SqueezeExcitation`` are what the AudioSet network is made of, but
importing torchvision loads its whole package (models, ops, datasets) and with it
``torch._dynamo``: about 1.5x the time of ``import torch`` itself, paid by every prediction with
the torch backend. These are the same blocks, module for module (same children, same state-dict
keys, same arithmetic); ``tests/test_efficientat.py`` checks them against torchvision's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The channel rounding of MobileNet (torchvision's ``_make_divisible``)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10%
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (no bias) -> norm -> activation (omitted when ``activation_layer`` is None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, dilation: int = 1, *, norm_layer: Callable[..., nn.Module],
                 activation_layer: Callable[..., nn.Module] | None = nn.ReLU):
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                             dilation=dilation, groups=groups, bias=False),
                                   norm_layer(out_channels)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """``x * scale(fc2(act(fc1(mean(x)))))`` with 1x1 convolutions (``fc1``, ``fc2``)."""

    def __init__(self, input_channels: int, squeeze_channels: int, *,
                 activation: Callable[..., nn.Module] = nn.ReLU,
                 scale_activation: Callable[..., nn.Module] = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


@dataclass(frozen=True)
class BlockConfig:
    """One row of MobileNetV3's table, channels already scaled by ``width_mult``."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hs: bool  # hard-swish ("HS") rather than ReLU ("RE")
    stride: int

    @classmethod
    def from_row(cls, input_channels, kernel, expanded, out, use_se, activation, stride, width_mult):
        scale = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
        return cls(scale(input_channels), kernel, scale(expanded), scale(out), use_se, activation == "HS", stride)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (k x k) -> [squeeze-excitation] -> project (1x1), residual when
    the shape is kept; children under ``block`` as torchvision names them."""

    def __init__(self, cnf: BlockConfig, norm_layer: Callable[..., nn.Module],
                 se_layer: Callable[..., nn.Module] = SqueezeExcitation):
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, cnf.expanded_channels, kernel_size=1,
                                               norm_layer=norm_layer, activation_layer=act))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.expanded_channels, kernel_size=cnf.kernel,
                                           stride=cnf.stride, groups=cnf.expanded_channels,
                                           norm_layer=norm_layer, activation_layer=act))
        if cnf.use_se:
            layers.append(se_layer(cnf.expanded_channels, make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.out_channels, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out
