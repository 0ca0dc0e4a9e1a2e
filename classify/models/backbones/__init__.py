"""Pretrained backbones that are not plain torchvision/timm models (AudioSet: EfficientAT)."""
