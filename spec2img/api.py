"""spec2img's public Python API: :func:`convert` (what ``spec2img AUDIO_DIR IMAGES_DIR`` does) and
:func:`synth` (what ``spec2img synth OUT_DIR`` does), reached as ``spec2img.convert(...)`` and
``spec2img.synth(...)``. Keyword arguments are named like the CLI flags (``--n-fft`` is
``n_fft``); defaults come from the same :class:`~spec2img.config.SpectrogramConfig` presets.

Example:
    >>> import spec2img
    >>> spec2img.synth("clips", n_per_class=4)                     # doctest: +SKIP
    >>> res = spec2img.convert("clips", "images", labels="clips/synth.csv")  # doctest: +SKIP
    >>> res.n_ok, res.manifest                                      # doctest: +SKIP
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import DEFAULT_PRESET, SpectrogramConfig
from .errors import ConfigError, Spec2ImgError

#: Spectrogram settings ``convert`` takes as keyword arguments (the ``spec2img`` flags of the same
#: names; None keeps the preset's value).
SPECTROGRAM_OPTIONS = ("feature", "sr", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax", "top_db",
                       "n_mfcc", "mode", "cmap", "duration", "crop", "tile", "tile_hop", "seed")
#: How the folder is read and the run is done (``--file-col`` ... ``--wait``).
RUN_OPTIONS = ("file_col", "label_col", "fold_col", "group_col", "group_from_name", "missing", "strict", "engine",
               "address", "follow_symlinks", "wait", "progress")


@dataclass(frozen=True)
class ConvertResult:
    """What :func:`convert` did.

    Attributes:
        images_dir: the images folder (``<label>/<clip>.png``, ``manifest.csv``, ``spectrogram.json``).
        manifest: ``images_dir/manifest.csv``, one row per audio-looking input.
        n_ok: clips whose images are there (converted now, or already up to date).
        n_failed: clips that could not be read (their manifest rows say why).
        n_skipped: entries refused before reading (links out of the folder, special files, ...).
        n_images: images written or kept.
        seconds: wall time of the run, s.
        config: the spectrogram settings the images were made with.
        line: the one-line summary ``spec2img`` prints (converted, up to date, failed, skipped, rate).
    """

    images_dir: Path
    manifest: Path
    n_ok: int
    n_failed: int
    n_skipped: int
    n_images: int = 0
    seconds: float = 0.0
    config: SpectrogramConfig | None = None
    line: str = ""


def _check_options(options: dict, known: tuple[str, ...], what: str) -> None:
    """A :class:`Spec2ImgError` naming an unknown keyword and the closest known one."""
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise Spec2ImgError(f"{what}: unknown option {name!r}{hint}")


def spectrogram_config(preset: str = DEFAULT_PRESET, **options) -> SpectrogramConfig:
    """The :class:`SpectrogramConfig` of ``preset`` with ``options`` (:data:`SPECTROGRAM_OPTIONS`,
    None keeps the preset's value) applied: what ``spec2img --preset NAME --n-mels ...`` builds."""
    from .config import from_preset

    _check_options(options, SPECTROGRAM_OPTIONS, "spectrogram")
    return from_preset(preset, **options)


def convert(audio_dir: str | Path, images_dir: str | Path, *, labels: str | Path | None = None,
            preset: str = DEFAULT_PRESET, jobs: int | None = 1, config: SpectrogramConfig | None = None,
            **options: Any) -> ConvertResult:
    """Render every clip under ``audio_dir`` as spectrogram PNGs in ``images_dir``, with
    ``manifest.csv`` and ``spectrogram.json`` beside them (``spec2img AUDIO_DIR IMAGES_DIR``).

    Images are ``uint8``, ``n_mels`` rows (low frequencies at the bottom) by one column per
    ``hop_length`` samples at ``sr``; pixel ``p`` stands for ``vmin + p * (vmax - vmin) / 255`` (dB
    for the log-mel presets). A rerun converts only what changed.

    Args:
        audio_dir: folder of audio files (any libsndfile format); the first folder level names
            the class unless ``labels`` is given.
        images_dir: output folder (created; locked while the run writes).
        labels: a labels CSV (Freesound, ESC-50, UrbanSound8K layouts, or ``file_col`` /
            ``label_col`` / ``fold_col`` / ``group_col``), as ``--labels``; ``missing="skip"``
            skips its rows naming absent files; ``group_from_name``: a regex naming the recording
            a clip was cut from.
        preset: spectrogram preset (``efficientat``, the default, matches the AudioSet backbone).
        jobs: worker processes (None: all cores).
        config: a ready :class:`SpectrogramConfig` instead of ``preset`` and spectrogram options.
        **options: spectrogram settings (:data:`SPECTROGRAM_OPTIONS`: ``sr`` Hz, ``n_fft`` and
            ``hop_length`` samples, ``n_mels``, ``fmin``/``fmax`` Hz, ``top_db`` dB, ``duration``,
            ``tile``, ``tile_hop`` s, ...) and run options (:data:`RUN_OPTIONS`).

    Returns:
        :class:`ConvertResult`.

    Raises:
        Spec2ImgError: a bad folder, CSV or setting (one line naming it).
    """
    from .convert import convert as run_convert

    if jobs is not None and jobs < 1:
        raise Spec2ImgError(f"jobs={jobs} must be at least 1 (--jobs)")
    run = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
    if config is None:
        config = spectrogram_config(preset, **options)
    elif options:
        raise ConfigError(f"give spectrogram settings ({', '.join(options)}) or config=, not both")
    run.setdefault("progress", False)
    if "group_from_name" in run:  # --group-from-name REGEX
        run["group_regex"] = run.pop("group_from_name")
    s = run_convert(Path(audio_dir), Path(images_dir), config, labels_csv=labels, jobs=jobs, **run)
    return ConvertResult(images_dir=Path(images_dir), manifest=s.manifest or Path(images_dir) / "manifest.csv",
                         n_ok=s.converted + s.up_to_date, n_failed=s.failed, n_skipped=s.skipped,
                         n_images=s.images, seconds=s.seconds, config=config, line=s.line())


def synth(out_dir: str | Path, *, kind: str = "demo", seed: int = 0, n_per_class: int = 12,
          sr: int = 44100, classes: Sequence[str] | None = None) -> Path:
    """Write a deterministic labelled set of synthetic clips (``spec2img synth OUT_DIR``).

    ``kind="demo"`` (the only kind): ESC-50-like clips (0.5 to 4 s) of six sound classes (tones, chirps,
    noise bursts, click trains, hum, bells) at different levels and noise, in
    ``OUT_DIR/<class>/<class>_<i>.wav`` plus ``OUT_DIR/synth.csv`` (``fname, label,
    manually_verified, ...``). Clip ``i`` of a class depends only on ``(seed, class, i)``.

    Args:
        out_dir: output folder.
        kind: which set; ``"demo"``.
        seed: random seed.
        n_per_class: clips per class.
        sr: sample rate, Hz (>= 8000).
        classes: a subset of the class names (default all six).

    Returns:
        ``out_dir``.
    """
    from .synth import synth as write_synth

    if kind != "demo":
        raise Spec2ImgError(f"synth kind={kind!r} is unknown; the one kind is 'demo'")
    return write_synth(Path(out_dir), n_per_class=n_per_class, sr=sr, seed=seed, classes=classes)


__all__ = ["ConvertResult", "RUN_OPTIONS", "SPECTROGRAM_OPTIONS", "convert", "spectrogram_config", "synth"]
