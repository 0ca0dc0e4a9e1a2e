"""File edges: atomic writes and PNG encode/decode. Nothing here computes features."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

DIGEST_KEY = "spec2img"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    A process killed at any instant leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_png(img: np.ndarray, *, digest: str | None = None, compress_level: int = 1) -> bytes:
    """Encode a uint8 image [shape=(H, W) or (H, W, 3)] as PNG bytes, deterministically.

    ``digest`` is stored in a tEXt chunk so that a rerun can tell whether the image was made with
    the same configuration. Level 1 deflate is ~4x faster than PIL's default and ~10% larger.
    """
    if img.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {img.dtype}")
    info = None
    if digest is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(DIGEST_KEY, digest)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=compress_level, pnginfo=info)
    return buf.getvalue()


def read_png(path: Path) -> np.ndarray:
    """Decode a PNG into a uint8 array [shape=(H, W) or (H, W, 3)]."""
    with Image.open(path) as im:
        return np.asarray(im)


def png_digest(path: Path) -> str | None:
    """The configuration digest stamped into ``path``, or None if absent or unreadable."""
    try:
        with Image.open(path) as im:
            return im.text.get(DIGEST_KEY)  # type: ignore[attr-defined]
    except (OSError, SyntaxError, ValueError):
        return None
