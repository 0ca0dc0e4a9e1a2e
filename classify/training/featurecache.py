"""Frozen window features computed once per image and kept on disk (the probe's feature cache).

``--head-only`` (and LP-FT's first step) needs the frozen backbone's pooled features of every
window of every training image (:func:`window_features`). They depend
only on the image, the frozen network and the window, so they are cached per image, keyed by

- the image's digest (sha1 of its uint8 pixels and shape),
- the model's digest: sha1 of every tensor of its state outside the head (the backbone's weights,
  whatever file or download they came from, and the normalisation buffers), the head's pooling,
  the input height, value range and channels,
- the window width in frames (windows as :func:`classify.models.classifier.cut_windows` cuts them).

Any change to one of them is a different key, so a stale entry is never read. ``classify cv
--head-only`` with K folds computes each image's features once (the first fold that needs them)
instead of K times, and a second run on the same images computes none.

Where the cache lives (:func:`cache_root`): ``$CLASSIFY_FEATURE_CACHE`` if set (``off`` disables
it), else ``IMAGES_DIR/.features/`` when the images folder is writable, else the user cache
(``$XDG_CACHE_HOME/classify/features``, default ``~/.cache/classify/features``); with none of them
writable, features are computed and not kept (logged once). Entries are ``.npy`` files
(float32 ``[n_windows, F]``) written atomically; delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..models.classifier import AudioClassifier, cut_windows

log = logging.getLogger(__name__)

ENV = "CLASSIFY_FEATURE_CACHE"
FOLDER = ".features"
VERSION = "1"  # bump when the feature computation itself changes


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def cache_root(images_dir: Path | None) -> Path | None:
    """The cache folder for images in ``images_dir`` (see the module docstring), or None (no cache)."""
    env = os.environ.get(ENV)
    if env:
        if env.lower() in ("off", "0", "none", "no"):
            return None
        return Path(env).expanduser() if _writable(Path(env).expanduser()) else None
    if images_dir is not None and _writable(Path(images_dir) / FOLDER):
        return Path(images_dir) / FOLDER
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "classify" / "features"
    if _writable(user):
        return user
    log.info("no writable feature cache (%s, %s): frozen features are computed and not kept", images_dir, user)
    return None


def image_digest(img: torch.Tensor) -> str:
    """sha1 of a uint8 image's shape and pixels."""
    a = np.ascontiguousarray(img.numpy() if isinstance(img, torch.Tensor) else img)
    h = hashlib.sha1(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def model_digest(model, *, width: int) -> str:
    """sha1 of what a frozen feature depends on besides the image (see the module docstring)."""
    h = hashlib.sha1(f"v{VERSION} width={width} pool={getattr(model.head, 'pool_kind', 'mean')} "
                     f"height={model.input_height} range={model.value_range} ch={model.in_channels}".encode())
    for k, v in model.state_dict().items():
        if k.startswith("head."):
            continue
        t = v.detach().cpu().contiguous()
        h.update(f"{k}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@torch.no_grad()
def window_features(model: AudioClassifier, images: list[torch.Tensor], *, width: int,
                    bs: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features of every window: ``(X [shape=(n_windows, F)], owner (n_windows,))``.

    ``images``: uint8 ``(C, H, W_i)``; windows as :func:`classify.models.classifier.cut_windows` cuts them.
    """
    from spec2img.progress import Progress

    crops, plan = cut_windows(images, width=width)
    model.eval()
    out = []
    with Progress(len(crops), unit="window", desc="frozen features", logger=log) as bar:
        for b in range(0, len(crops), bs):
            x = torch.stack(crops[b:b + bs]).float().div_(255)
            out.append(model.head.pool(model.body(model.prepare(x))).numpy())
            bar.update(len(x))
    return np.concatenate(out).astype(np.float64), plan.owner


def _compute(model, images: list[torch.Tensor], *, width: int, bs: int) -> tuple[np.ndarray, np.ndarray]:
    """The features themselves (the one call that runs the network; tests count it)."""
    return window_features(model, images, width=width, bs=bs)


def cached_window_features(model, ds, idx: np.ndarray, *, width: int, bs: int = 32,
                           root: Path | None | str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_features` of images ``ds.images[idx]`` through the cache.

    Returns ``(X [shape=(n_windows, F)] float64, owner (n_windows,))``, ``owner`` indexing ``idx``,
    window order as ``window_features`` gives it. ``root``: the cache folder, ``"auto"`` for
    :func:`cache_root` of ``ds.root``, None to compute without caching.
    """
    if root == "auto":
        root = cache_root(getattr(ds, "root", None))
    return cached_features(model, [ds.images[i] for i in idx], width=width, bs=bs, root=root)


def cached_features(model, images: list[torch.Tensor], *, width: int, bs: int = 32,
                    root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_features` of uint8 ``(C, H, W_i)`` images through the cache folder ``root``
    (None: computed, not kept). Returns ``(X [shape=(n_windows, F)] float64, owner (n_windows,))``.

    Safe to call from several threads or processes at once: entries are written atomically, so a
    reader sees a whole entry or none (two callers missing the same image both compute it).
    """
    if root is None:
        return _compute(model, images, width=width, bs=bs)
    folder = Path(root) / model_digest(model, width=width)[:20]
    keys = [image_digest(img) for img in images]
    per_image: dict[str, np.ndarray] = {}
    for key in set(keys):
        path = folder / key[:2] / f"{key}.npy"
        if path.is_file():
            try:
                per_image[key] = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                pass  # unreadable entry: computed again below
    missing = sorted({k for k in keys if k not in per_image})
    if missing:
        first = {k: keys.index(k) for k in missing}
        X, owner = _compute(model, [images[first[k]] for k in missing], width=width, bs=bs)
        from spec2img.io import write_atomic

        for j, key in enumerate(missing):
            feats = X[owner == j].astype(np.float32)
            per_image[key] = feats
            buf = io.BytesIO()
            np.save(buf, feats, allow_pickle=False)
            try:
                (folder / key[:2]).mkdir(parents=True, exist_ok=True)
                write_atomic(folder / key[:2] / f"{key}.npy", buf.getvalue())
            except OSError as exc:
                log.debug("feature cache entry not written (%s)", exc)
    log.info("frozen features: %d image(s) from the cache, %d computed (%s)", len(set(keys)) - len(missing),
             len(missing), folder)
    parts = [per_image[k] for k in keys]
    owner = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
    return np.concatenate(parts).astype(np.float64), owner
