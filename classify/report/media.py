"""Copy what the page shows into the report folder: downscaled spectrogram thumbnails and audio.

Only the rows the page references get a thumbnail or audio, so the folder stays bounded and can be
zipped and moved. A source that cannot be found or read becomes "no thumbnail" / "no player".
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from spec2img.io import write_atomic

log = logging.getLogger(__name__)

THUMB_HEIGHT = 80   # px; spectrogram rows are squeezed to at most this
THUMB_MAX_WIDTH = 320  # px; long clips are squeezed in time rather than made wider


def make_thumbnail(src: Path, dst: Path) -> bool:
    """Write a downscaled PNG of ``src`` to ``dst``; False (and nothing written) if unreadable.

    Skips the work when ``dst`` is already newer than ``src`` (fast rebuilds).
    """
    try:
        if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
            return True
        with Image.open(src) as im:
            im.load()
            w, h = im.size
            nh = min(h, THUMB_HEIGHT)
            nw = max(1, min(THUMB_MAX_WIDTH, round(w * nh / h)))
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            small = im.resize((nw, nh), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
    except (OSError, UnidentifiedImageError, ZeroDivisionError) as exc:
        log.debug("thumbnail of %s failed: %s", src, exc)
        return False
    write_atomic(dst, buf.getvalue())  # a full disk stops the report (one line), never a torn file
    return True


def stable_name(src: Path, suffix: str) -> str:
    """A file name that depends only on ``src``'s path: readable stem + short hash."""
    digest = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.stem)[:40]
    return f"{stem}-{digest}{suffix}"


def write_thumbnails(images: dict[int, Path], out_dir: Path) -> dict[int, str]:
    """``{row: source png}`` -> ``{row: "thumbs/<name>.png"}`` for the ones that worked."""
    done = {}
    for row, src in images.items():
        if src is None:
            continue
        rel = f"thumbs/{stable_name(src, '.png')}"
        if src is not None and src.is_file() and make_thumbnail(src, out_dir / rel):
            done[row] = rel
    return done


def place_audio(sources: list[Path], out_dir: Path, *, mode: str, budget_bytes: int) -> tuple[dict[Path, str], int]:
    """Make each audio file playable from ``out_dir``; ``sources`` in priority order.

    ``mode="copy"`` copies into ``out_dir/audio/`` until ``budget_bytes`` is spent (the rest get no
    player); ``"link"`` refers to the original files by relative path (nothing copied, not movable);
    ``"none"`` places nothing. Returns ``{source: href relative to out_dir}`` and bytes copied.
    """
    placed: dict[Path, str] = {}
    used = 0
    if mode == "none":
        return placed, 0
    for k, src in enumerate(sources):
        if src in placed or not src.is_file():
            continue
        if mode == "link":
            placed[src] = Path(os.path.relpath(src.resolve(), out_dir.resolve())).as_posix()
            continue
        size = src.stat().st_size
        if used + size > budget_bytes:
            continue
        rel = f"audio/{stable_name(src, src.suffix.lower())}"
        dst = out_dir / rel
        if not (dst.is_file() and dst.stat().st_size == size and dst.stat().st_mtime >= src.stat().st_mtime):
            write_atomic(dst, src.read_bytes())
        placed[src] = rel
        used += size
    return placed, used


def prune(out_dir: Path, keep: set[str], subdirs: tuple[str, ...] = ("thumbs", "audio")) -> None:
    """Delete files under ``out_dir/<subdir>`` that the new page no longer references."""
    for sub in subdirs:
        folder = out_dir / sub
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if f.is_file() and f"{sub}/{f.name}" not in keep:
                f.unlink()
