"""The memory-mapped image store (``spec2img store``): same pixels, same crops and batches as the
decoded PNGs; used by classify only when fresh."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from classify.data.imageset import CropDataset, load_image_set
from imageset import make_image_set
from spec2img.cli import main as spec2img_main
from spec2img.errors import Spec2ImgError
from spec2img.store import STORE_DIR, ImageStore, build_store, open_fresh


@pytest.fixture
def images(tmp_path):
    # widths differ (0.6-1.4 s clips would need several sets; two sets merged keep it simple)
    root = make_image_set(tmp_path / "img", n_classes=3, per_class=5, groups_per_class=5, seconds=1.3)
    return root


def _batches(ds, *, train: bool, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    idx = np.arange(len(ds.images))
    crops = CropDataset(ds.images, ds.targets, np.ones(len(idx), np.float32), width=40, train=train)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(crops, batch_size=4, shuffle=True)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_store_gives_the_same_images_crops_and_batches(images, monkeypatch):
    import classify.data.imageset

    memory = load_image_set(images)
    assert spec2img_main(["store", str(images), "-q"]) == 0

    def no_decoding(*args, **kwargs):
        raise AssertionError("PNGs decoded although a fresh store exists")

    monkeypatch.setattr(classify.data.imageset, "decode_all", no_decoding)
    mapped = load_image_set(images)
    assert len(mapped.images) == len(memory.images) == 15
    for a, b in zip(memory.images, mapped.images):
        assert a.dtype == b.dtype == torch.uint8 and torch.equal(a, b)
    for train in (True, False):
        for (xa, ya), (xb, yb) in zip(_batches(memory, train=train, seed=7), _batches(mapped, train=train, seed=7),
                                      strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_changed_png_or_other_settings_fall_back_to_decoding(images, caplog):
    names = list(load_image_set(images).table["image"])
    build_store(images)
    assert open_fresh(images, names) is not None
    png = images / names[4]
    st = png.stat()
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # re-rendered since the store was written
    assert open_fresh(images, names) is None and "changed or missing" in caplog.text
    assert open_fresh(images, names[:4]) is not None  # the others are still fresh
    from spec2img.config import SpectrogramConfig

    other = SpectrogramConfig.load(images).__class__(**{**SpectrogramConfig.load(images).to_dict(), "n_fft": 512})
    with pytest.raises(Spec2ImgError, match="other spectrogram settings"):
        ImageStore.open(images, other)
    (images / STORE_DIR / "index.npz").write_bytes(b"junk")
    assert open_fresh(images, names) is None  # unreadable: decode instead, with a warning


def test_store_command_needs_an_images_folder(tmp_path, capsys):
    assert spec2img_main(["store", str(tmp_path)]) == 2
    assert "no manifest.csv" in capsys.readouterr().err
