"""EfficientAT mn04: the network, its key mapping, its front-end, and parity with the original code.

The parity tests compare against ``../shared/weights/efficientat/reference_outputs.npz`` (what the
original EfficientAT code computes for one ESC-50 clip per class) and skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from classify.models.backbones.efficientat import (
    EMBED_DIM,
    N_CLASSES,
    EfficientATMN,
    convert_state_dict,
    efficientat_body,
    efficientat_mn04,
    load_efficientat_state_dict,
)
from classify.models.archs import get_arch
from classify.errors import WeightsError
from classify.models.classifier import build_model
from spec2img.audio import load
from spec2img.config import from_preset
from spec2img.features import log_mel
from spec2img.image import render, to_values

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS_DIR = SHARED / "weights" / "efficientat"
CHECKPOINT = WEIGHTS_DIR / "mn04_as_mAP_432.pt"
REFERENCE = WEIGHTS_DIR / "reference_outputs.npz"
ESC50_AUDIO = SHARED / "data" / "esc50-dev" / "audio"

needs_weights = pytest.mark.skipif(
    not (CHECKPOINT.is_file() and REFERENCE.is_file()), reason=f"no EfficientAT weights/reference in {WEIGHTS_DIR}"
)
needs_esc50 = pytest.mark.skipif(not ESC50_AUDIO.is_dir(), reason=f"no ESC-50 clips in {ESC50_AUDIO}")

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def original_style(state: dict) -> dict:
    """The inverse of convert_state_dict: EfficientAT's own key names and SE weight shapes."""
    out = {}
    for key, value in state.items():
        if ".fc1." in key or ".fc2." in key:
            key = key.replace(".fc", ".conc_se_layers.0.fc")
            if value.ndim == 4:
                value = value[:, :, 0, 0]
        key = key.replace("classifier.0.", "classifier.2.").replace("classifier.3.", "classifier.5.")
        out[key] = value
    return out


# ------------------------------------------------------------------------------- synthetic, fast
def test_shapes_any_length():
    torch.manual_seed(0)
    model = EfficientATMN().eval()
    with torch.no_grad():
        for frames in (1, 37):
            x = torch.randn(2, 1, 128, frames)
            assert model(x).shape == (2, N_CLASSES)
            assert model.embed(x).shape == (2, EMBED_DIM)
    assert model.forward_features(torch.randn(1, 1, 128, 100)).shape == (1, EMBED_DIM, 4, 4)
    assert 0.9e6 < sum(p.numel() for p in model.parameters()) < 1.1e6  # "about 1M parameters"


def test_state_dict_round_trip_through_original_keys(tmp_path):
    torch.manual_seed(0)
    source = EfficientATMN().eval()
    original = original_style(source.state_dict())
    assert "features.4.block.2.conc_se_layers.0.fc1.weight" in original
    assert original["features.4.block.2.conc_se_layers.0.fc1.weight"].ndim == 2
    assert {"classifier.2.weight", "classifier.5.bias"} <= set(original)
    torch.save(original, tmp_path / "fake.pt")
    assert set(load_efficientat_state_dict(tmp_path / "fake.pt")) == set(source.state_dict())
    model = efficientat_mn04(tmp_path / "fake.pt")
    x = torch.randn(1, 1, 128, 50)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))
    assert convert_state_dict({}) == {}


def test_new_head_keeps_pretrained_body(tmp_path):
    torch.manual_seed(0)
    source = EfficientATMN().eval()
    torch.save(original_style(source.state_dict()), tmp_path / "fake.pt")
    model = efficientat_mn04(tmp_path / "fake.pt", num_classes=10)
    x = torch.randn(1, 1, 128, 50)
    with torch.no_grad():
        assert model(x).shape == (1, 10)
        torch.testing.assert_close(model.embed(x), source.embed(x))


def test_bad_checkpoints_raise_weights_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt: not a readable torch checkpoint"):
        load_efficientat_state_dict(tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="no such weights file"):
        load_efficientat_state_dict(tmp_path / "missing.pt")
    torch.save({"features.0.0.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="does not fit EfficientAT mn04"):
        efficientat_mn04(tmp_path / "other.pt")


def test_image_adapter_inverts_spec2img_rendering():
    cfg = from_preset("efficientat")
    rng = np.random.default_rng(0)
    values = rng.uniform(-1.4, 3.4, size=(1, 128, 20)).astype(np.float32)
    values[0, 0] = 3.0  # band 0 (lowest) must come back in row 0 of the network input
    pixels = render(values, cfg)  # (128, 20) uint8, lowest band in the bottom row
    assert pixels[-1, 0] == pixels[-1].max()
    x = torch.from_numpy(pixels.astype(np.float32) / 255)[None, None]
    # the path a fitted model takes: pixels -> values in the classifier, rows -> bands in the body
    model = build_model(get_arch("efficientat_mn04"), n_classes=2, in_channels=1, pretrained=False,
                        value_range=(cfg.vmin, cfg.vmax))
    with torch.no_grad():
        back = model.body[0](model.prepare(x))[0, 0].numpy()
    assert np.allclose(model.prepare(x)[0, 0].numpy(), to_values(pixels, vmin=cfg.vmin, vmax=cfg.vmax), atol=1e-5)
    step = (cfg.vmax - cfg.vmin) / 255
    assert np.abs(back - values[0]).max() <= step / 2 + 1e-6


def test_body_for_image_rows_matches_band_order():
    torch.manual_seed(0)
    body, n_features = efficientat_body(False)
    assert n_features == EMBED_DIM
    bands = torch.randn(1, 1, 128, 40)
    features = body[1]
    with torch.no_grad():
        torch.testing.assert_close(body.eval()(bands.flip(2)), features.eval()(bands))


# ----------------------------------------------------------------------- parity with the original
@pytest.mark.realdata
@needs_weights
def test_logits_and_embedding_parity_all_reference_clips():
    ref = np.load(REFERENCE)
    model = efficientat_mn04(CHECKPOINT)
    x = torch.from_numpy(ref["logmel"])[:, None]
    with torch.no_grad():
        logits = model(x).numpy()
        embedding = model.embed(x).numpy()
    assert logits.shape == (25, N_CLASSES)
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(embedding, ref["embedding"], atol=1e-3, rtol=0)


@pytest.mark.realdata
@needs_weights
@needs_esc50
def test_logmel_parity_all_reference_clips():
    """Audio -> preset log-mel equals EfficientAT's input within 1e-3 (25 clips).

    The reference read soundfile float32 and ``soxr.resample`` at its default quality, which is
    "HQ": exactly what ``spec2img.audio.load`` does, so both paths must agree.
    """
    ref = np.load(REFERENCE)
    cfg = from_preset("efficientat")
    for name, expected in zip(ref["filenames"], ref["logmel"]):
        path = ESC50_AUDIO / str(name)
        y, sr = sf.read(str(path), dtype="float32")
        y32 = soxr.resample(y, sr, 32000)
        ours, _ = load(path, sr=32000)
        np.testing.assert_array_equal(ours, y32)
        mel = log_mel(y32, cfg)
        assert mel.shape == expected.shape, name
        np.testing.assert_allclose(mel, expected, atol=1e-3, rtol=0, err_msg=str(name))


def test_blocks_equal_torchvisions_module_for_module():
    """classify.models.backbones.mobilenet_blocks (no torchvision import at load) == torchvision's blocks:
    same state-dict keys and shapes, same outputs with the same weights."""
    from functools import partial

    from torchvision.models.mobilenetv3 import InvertedResidual as TVBlock
    from torchvision.models.mobilenetv3 import InvertedResidualConfig
    from torchvision.ops.misc import SqueezeExcitation as TVSE

    from classify.models.backbones import mobilenet_blocks as B
    from classify.models.backbones.efficientat import _LARGE

    norm = partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.01)
    torch.manual_seed(0)
    for row in _LARGE:
        ours = B.InvertedResidual(B.BlockConfig.from_row(*row, 0.4), norm,
                                  se_layer=partial(B.SqueezeExcitation, scale_activation=torch.nn.Sigmoid))
        theirs = TVBlock(InvertedResidualConfig(*row, 1, 0.4), norm,
                         se_layer=partial(TVSE, scale_activation=torch.nn.Sigmoid))
        a, b = ours.state_dict(), theirs.state_dict()
        assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
        for k in a:  # random statistics too, so BatchNorm does something in eval mode
            a[k].copy_(torch.rand_like(a[k].float()).to(a[k].dtype) + 0.5 if a[k].is_floating_point() else a[k])
        theirs.load_state_dict(a)
        x = torch.randn(2, ours.block[0][0].in_channels, 16, 20)
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-6)
    assert B.make_divisible(1280 * 0.4, 8) == InvertedResidualConfig.adjust_channels(1280, 0.4)


def test_loading_the_audioset_network_does_not_import_torchvision():
    import subprocess
    import sys

    code = ("import sys; from classify.models.backbones.efficientat import EfficientATMN; EfficientATMN(); "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
