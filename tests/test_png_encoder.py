"""The hand-written PNG encoder: PIL decodes it exactly, the digest chunk survives, bytes are stable."""

from __future__ import annotations

import io as _io

import numpy as np
import pytest
from PIL import Image

from spec2img import io


@pytest.mark.parametrize("shape", [(128, 431), (40, 7, 3), (1, 1)])
def test_pil_decodes_exactly_with_digest(tmp_path, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = io.encode_png(img, digest="abc123")
    assert data == io.encode_png(img, digest="abc123")
    (tmp_path / "x.png").write_bytes(data)
    np.testing.assert_array_equal(io.read_png(tmp_path / "x.png"), img)
    assert io.png_digest(tmp_path / "x.png") == "abc123"
    with Image.open(_io.BytesIO(io.encode_png(img))) as im:
        im.load()
        assert im.mode == ("L" if len(shape) == 2 else "RGB") and "spec2img" not in im.text


def test_no_larger_than_pil_on_a_spectrogram_like_image():
    t = np.arange(431)
    img = np.clip(128 + 60 * np.sin(t / 20)[None] * np.linspace(0, 1, 128)[:, None]
                  + np.random.default_rng(1).normal(0, 8, (128, 431)), 0, 255).astype(np.uint8)
    buf = _io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    assert len(io.encode_png(img)) <= 1.05 * len(buf.getvalue())


def test_rejects_wrong_dtype_and_shape():
    with pytest.raises(TypeError, match="uint8"):
        io.encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        io.encode_png(np.zeros((2, 2, 4), np.uint8))
