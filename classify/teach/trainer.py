"""Teach mode's model side (torch): frozen features per example as it arrives, Train -> a run folder.

Features: each example is rendered in memory with the session's spectrogram settings
(:func:`spec2img.render.render_clip`) and its windows go through the frozen AudioSet network once
(:func:`classify.training.featurecache.window_features`), kept in the project's frozen-feature
cache (:mod:`classify.training.featurecache`, ``SESSION/images/.features``). Train renders the
examples with spec2img (only new ones), loads them as any image folder, and runs the ordinary
head-only fit (:func:`classify.training.headonly.fit`), which finds those features in the cache, so
the run folder is the one ``classify fit --head-only`` writes, ``openset.json`` included.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch

from spec2img.config import SpectrogramConfig, from_preset

from ..config import TrainConfig
from ..data.imageset import crop_width
from ..training.featurecache import cache_root, cached_features
from ..training.headonly import frozen_model

log = logging.getLogger(__name__)

ARCH = "efficientat_mn04"


class FeatureStore:
    """Frozen window features of a session's examples, computed once per image as it arrives.

    The features live in the project's one frozen-feature cache
    (:mod:`classify.training.featurecache`, keyed by image, model and window width) at
    :func:`~classify.training.featurecache.cache_root` of the session's images folder
    (``SESSION/images/.features`` when writable), where the head-only fit of Train finds them.
    ``lock`` serialises the computations (one network, one writer per cache entry).
    """

    def __init__(self, train_cfg: TrainConfig, spectrogram: SpectrogramConfig, images_dir: Path):
        self.cfg = train_cfg.resolved()
        self.spectrogram = spectrogram
        self.model = frozen_model(self.cfg, spectrogram, 1)
        self.root = cache_root(images_dir)
        self.lock = threading.Lock()

    def width(self, max_width: int = 10**9) -> int:
        return crop_width(self.spectrogram, self.cfg.crop_seconds, max_width)

    def features(self, images: list[torch.Tensor], width: int) -> np.ndarray:
        """Features of every window of ``images`` at ``width`` [shape=(n_windows, F)] (cached)."""
        with self.lock:
            return cached_features(self.model, images, width=width, bs=self.cfg.bs, root=self.root)[0]

    def render(self, path: Path) -> list[torch.Tensor]:
        """An audio file's images as spec2img renders them, uint8 ``(C, H, W)``."""
        from spec2img.render import render_clip

        out = []
        for _, img in render_clip(Path(path), self.spectrogram):
            arr = img[None] if img.ndim == 2 else np.moveaxis(img[..., :3], -1, 0)
            out.append(torch.from_numpy(np.ascontiguousarray(arr)))
        return out

    def add_file(self, path: Path) -> np.ndarray:
        """Features of every window of an audio file [shape=(n_windows, F)] (cached)."""
        return np.concatenate([self.features([im], self.width(im.shape[-1])) for im in self.render(path)])


class Trainer:
    """Builds run folders from a :class:`~classify.teach.session.Session`."""

    def __init__(self, session, *, threads: int | None = None):
        self.session = session
        self.spectrogram = from_preset(session.cfg.preset)
        self.train_cfg = TrainConfig(images="", arch=ARCH, head_only=True, crop_seconds=session.cfg.example_seconds,
                                     head_c=session.cfg.head_c, valid_pct=session.cfg.valid_pct, seed=0, quiet=True)
        if threads:
            torch.set_num_threads(threads)
        self.cache = FeatureStore(self.train_cfg, self.spectrogram, session.root / "images")
        self.train_lock = threading.Lock()

    def add(self, path: Path) -> None:
        """Compute an example's features now (called as it arrives)."""
        self.cache.add_file(path)

    def train(self) -> tuple[Path, dict]:
        """Render new examples, fit the head on cached features, write the run folder."""
        from spec2img.convert import convert

        from ..data.imageset import load_image_set
        from ..runfolder import writing_run_dir
        from ..training import headonly

        s = self.session
        with self.train_lock:
            t0 = time.perf_counter()
            with s.lock:
                s.check_trainable()
                labels = s.write_labels()
                background = s.background_files()
                run_dir = s.next_run()
            images = s.root / "images"
            convert(s.root / "audio", images, self.spectrogram, labels_csv=labels, jobs=1, progress=False)
            ds = load_image_set(images)
            t1 = time.perf_counter()
            bg = None
            if background:
                feats = [self.cache.add_file(p) for p in background]
                bg = (np.concatenate(feats), np.concatenate([np.full(len(f), i) for i, f in enumerate(feats)]))
            # every image's entry in place before the fit reads the cache (examples that arrived
            # before this Train are hits; one still being computed is waited for, not computed twice)
            self.cache.features(list(ds.images), self.cache.width(ds.max_width))
            cfg = self.train_cfg.replace(images=str(images.resolve()), out=str(run_dir))
            with writing_run_dir(run_dir):
                metrics = headonly.fit(ds, cfg, run_dir, background=bg)
            with s.lock:
                s.runs.append(run_dir.name)
                s.save()
            seconds = time.perf_counter() - t0
            log.info("trained %s in %.2f s (render + load %.2f s)", run_dir, seconds, t1 - t0)
            return run_dir, {**metrics, "teach_seconds": seconds}
