"""A memory-mapped image store beside the PNGs: ``IMAGES_DIR/store/``, for sets that do not fit in
memory (``spec2img store IMAGES_DIR`` writes it; ``classify`` reads it when present and fresh).

Layout (pure numpy, no other format):

- ``images.u8``: every image's uint8 pixels ``(C, n_rows, width)`` in C order, one after another.
- ``index.npz``: ``offset`` (int64 bytes), ``width`` (int32 frames), ``size`` and ``mtime_ns``
  (int64) of the PNG each image came from, and ``names`` (str, the image path relative to
  IMAGES_DIR, as in the manifest).
- ``store.json``: format version, ``channels``, ``n_rows``, the spectrogram config digest, count.

:meth:`ImageStore.get` returns a copy-on-write memory-mapped view: pixels are read from the file
when touched (the page cache holds them, reclaimable), never decoded and never all in memory;
the arrays are equal to :func:`spec2img.io.read_png`'s (channels first).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SpectrogramConfig
from .errors import Spec2ImgError
from .io import read_png, write_atomic

log = logging.getLogger(__name__)

STORE_DIR = "store"
FORMAT_VERSION = 1


def _planes(arr: np.ndarray) -> np.ndarray:
    """A decoded PNG ``(H, W)`` or ``(H, W, 3|4)`` -> ``(C, H, W)`` (as classify lays images out)."""
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr[..., :3], -1, 0)


def build_store(images_dir: Path, names: list[str] | None = None) -> Path:
    """Write ``images_dir/store/`` from the PNGs (``names``; default every image of the manifest's
    converted clips); returns the store folder. One image in memory at a time."""
    from .manifest import image_table, read_manifest

    images_dir = Path(images_dir)
    cfg = SpectrogramConfig.load(images_dir)
    if names is None:
        names = list(image_table(read_manifest(images_dir))["image"])
    folder = images_dir / STORE_DIR
    folder.mkdir(exist_ok=True)
    data_path = folder / "images.u8"
    tmp = folder / ".images.u8.tmp"
    n = len(names)
    offset, width = np.zeros(n, np.int64), np.zeros(n, np.int32)
    size, mtime = np.zeros(n, np.int64), np.zeros(n, np.int64)
    pos = 0
    with open(tmp, "wb") as fh:
        for i, name in enumerate(names):
            path = images_dir / name
            try:
                st = path.stat()
                arr = np.ascontiguousarray(_planes(read_png(path)))
            except (OSError, SyntaxError, ValueError) as exc:
                raise Spec2ImgError(f"{path}: cannot decode PNG ({exc}); re-run spec2img") from None
            if arr.shape[:2] != (cfg.channels, cfg.n_rows):
                raise Spec2ImgError(f"{path}: {arr.shape[0]}x{arr.shape[1]} (channels x rows), "
                                    f"spectrogram.json says {cfg.channels}x{cfg.n_rows}; re-run spec2img")
            fh.write(arr.tobytes())
            offset[i], width[i], size[i], mtime[i] = pos, arr.shape[2], st.st_size, st.st_mtime_ns
            pos += arr.nbytes
    tmp.replace(data_path)
    with open(folder / ".index.npz.tmp", "wb") as fh:
        np.savez(fh, offset=offset, width=width, size=size, mtime_ns=mtime, names=np.array(names, dtype=str))
    (folder / ".index.npz.tmp").replace(folder / "index.npz")
    meta = {"format_version": FORMAT_VERSION, "channels": cfg.channels, "n_rows": cfg.n_rows,
            "digest": cfg.digest(), "count": n, "bytes": int(pos)}
    write_atomic(folder / "store.json", (json.dumps(meta, indent=2) + "\n").encode())
    log.info("store: %d images, %.1f MB in %s", n, pos / 1e6, data_path)
    return folder


@dataclass
class ImageStore:
    """An opened store: ``get(name)`` -> uint8 ``(C, n_rows, width)`` memory-mapped view."""

    folder: Path
    channels: int
    n_rows: int
    data: np.memmap
    index: dict[str, int]
    offset: np.ndarray
    width: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray

    @classmethod
    def open(cls, images_dir: Path, cfg: SpectrogramConfig | None = None) -> ImageStore:
        folder = Path(images_dir) / STORE_DIR
        try:
            meta = json.loads((folder / "store.json").read_text())
            with np.load(folder / "index.npz") as z:
                idx = {k: z[k] for k in ("offset", "width", "size", "mtime_ns", "names")}
        except (OSError, ValueError, KeyError) as exc:
            raise Spec2ImgError(f"{folder}: no readable image store ({type(exc).__name__}); "
                                f"run spec2img store {images_dir}") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise Spec2ImgError(f"{folder}: store format {meta.get('format_version')!r}, this version reads "
                                f"{FORMAT_VERSION}; run spec2img store {images_dir} again")
        cfg = cfg or SpectrogramConfig.load(images_dir)
        if meta["digest"] != cfg.digest():
            raise Spec2ImgError(f"{folder}: written for other spectrogram settings; "
                                f"run spec2img store {images_dir} again")
        data = (np.memmap(folder / "images.u8", dtype=np.uint8, mode="c") if meta["bytes"]
                else np.zeros(0, np.uint8))
        names = [str(s) for s in idx["names"]]
        return cls(folder, int(meta["channels"]), int(meta["n_rows"]), data,
                   {n: i for i, n in enumerate(names)}, idx["offset"], idx["width"], idx["size"], idx["mtime_ns"])

    def __len__(self) -> int:
        return len(self.index)

    def stale(self, images_dir: Path, names: list[str]) -> list[str]:
        """Names missing from the store or whose PNG changed (size or mtime) since it was written."""
        out = []
        for name in names:
            i = self.index.get(name)
            if i is None:
                out.append(name)
                continue
            try:
                st = (Path(images_dir) / name).stat()
            except OSError:
                continue  # the PNG is gone but its pixels are here
            if st.st_size != self.size[i] or st.st_mtime_ns != self.mtime_ns[i]:
                out.append(name)
        return out

    def get(self, name: str) -> np.ndarray:
        i = self.index[name]
        w, c, h = int(self.width[i]), self.channels, self.n_rows
        start = int(self.offset[i])
        return self.data[start:start + c * h * w].reshape(c, h, w)


def open_fresh(images_dir: Path, names: list[str], cfg: SpectrogramConfig | None = None) -> ImageStore | None:
    """The store of ``images_dir`` if it exists and holds ``names`` as they are now, else None
    (logged: then the PNGs are decoded as without a store)."""
    if not (Path(images_dir) / STORE_DIR / "store.json").is_file():
        return None
    try:
        store = ImageStore.open(images_dir, cfg)
    except Spec2ImgError as exc:
        log.warning("%s; decoding the PNGs instead", exc)
        return None
    stale = store.stale(images_dir, names)
    if stale:
        log.warning("%s: %d image(s) changed or missing since it was written (e.g. %s); decoding the PNGs "
                    "instead (run spec2img store %s again)", store.folder, len(stale), stale[0], images_dir)
        return None
    return store
