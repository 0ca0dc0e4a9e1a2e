"""Shared fixtures: seeded synthetic signals written in many formats, and the shared data paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights"


def tone(freq: float, *, sr: int = 22050, duration: float = 1.0, amp: float = 0.5, noise: float = 0.0,
         seed: int = 0) -> np.ndarray:
    """A sine of ``freq`` Hz [shape=(sr*duration,)], float32, with optional seeded white noise."""
    t = np.arange(int(round(sr * duration))) / sr
    y = amp * np.sin(2 * np.pi * freq * t)
    if noise:
        y = y + noise * np.random.default_rng(seed).standard_normal(t.size)
    return y.astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)
    return path


@pytest.fixture
def two_class_dir(tmp_path: Path) -> Path:
    """Folder-per-class audio: 3 low tones and 3 high tones, 1 s at 22.05 kHz."""
    root = tmp_path / "audio"
    for i in range(3):
        write(root / "low" / f"low{i}.wav", tone(220 + 20 * i, noise=0.01, seed=i), 22050, "PCM_16")
        write(root / "high" / f"high{i}.wav", tone(3000 + 200 * i, noise=0.01, seed=10 + i), 22050, "PCM_16")
    return root


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (real-data test; the shared folder sits beside the checkout)")
    return path


# ------------------------------------------------------------------ classify: tiny image folders
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from imageset import make_image_set  # noqa: E402


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """3 classes x 6 one-second clips from 3 recordings each; 32 mel rows x 63 frames."""
    return make_image_set(tmp_path_factory.mktemp("tiny"), n_classes=3, per_class=6, groups_per_class=3)


@pytest.fixture(scope="session")
def multi_images(tmp_path_factory) -> Path:
    """Multi-label with a manually_verified column (every fourth clip unverified)."""
    return make_image_set(tmp_path_factory.mktemp("multi"), n_classes=3, per_class=6, groups_per_class=3,
                          multi_label=True, verified=True)


@pytest.fixture
def one_torch_thread():
    """Small inputs: one intra-op thread is fastest, and immune to a busy shared CPU; restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers():
    """The CLIs' main() points the root logger at the sys.stderr of the moment (pytest's capture,
    closed after the test): remove those handlers so later tests do not log into a closed file."""
    import logging

    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        if type(h) is logging.StreamHandler:
            root.removeHandler(h)
