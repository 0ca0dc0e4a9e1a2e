"""The spectrogram stage's one configuration object.

A :class:`SpectrogramConfig` is frozen, saved as ``spectrogram.json`` beside the images, copied into
every training run, and read back by ``classify predict`` so that raw audio at prediction time goes
through exactly the features the network was trained on.

Pixel mapping (every preset, every mode): a feature value ``v`` (dB for ``scale="db"``, scaled
natural log for ``scale="ln"``) becomes the grey level ``p = round(255 * (v - vmin) / (vmax - vmin))``
clipped to 0..255, and ``v = vmin + p * (vmax - vmin) / 255`` maps it back. For the default preset
``v`` is dB relative to the loudest bin of the image (``power_to_db(S, ref=np.max, top_db=80)``), so
``vmin=-80, vmax=0`` and one grey level is 0.31 dB.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConfigError

Feature = Literal["logmel", "mfcc"]
Mode = Literal["grey", "deltas", "colormap"]
Crop = Literal["start", "center", "random"]
MelScale = Literal["slaney", "kaldi"]
Scale = Literal["db", "ln"]
PadMode = Literal["constant", "reflect"]

CONFIG_NAME = "spectrogram.json"
# Upper bounds of the integer settings (the CLI's and every spectrogram.json's): beyond them a
# setting is a typo or a hostile file, and would allocate gigabytes per clip.
LIMITS = {"sr": 768_000, "n_fft": 65_536, "hop_length": 1_048_576, "n_mels": 1_024, "n_mfcc": 1_024}
MAX_SECONDS = 86_400.0  # --duration / --tile / --tile-hop: one day


@dataclass(frozen=True)
class SpectrogramConfig:
    """How one clip becomes one image (or one image per tile).

    DSP parameters carry librosa's names and units (samples, Hz). Defaults suit general-purpose
    sound recorded at 44.1 kHz (Freesound, ESC-50): a 2048-sample window (46 ms) resolves low
    pitches, a 512-sample hop (11.6 ms, 86 frames/s) keeps onsets sharp, 128 mel bands from 20 Hz
    to Nyquist cover everything from hums to hiss, and an 80 dB range holds the useful dynamics of
    a clip while flooring its noise.
    """

    preset: str = "logmel"
    feature: Feature = "logmel"
    sr: int = 44100
    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    # How centring pads the signal's ends (librosa's name): "constant" (zeros, librosa's default)
    # or "reflect" (torch.stft's default, which EfficientAT was trained with).
    pad_mode: PadMode = "constant"
    n_mels: int = 128
    fmin: float = 20.0
    fmax: float | None = None
    mel_scale: MelScale = "slaney"
    preemphasis: float = 0.0
    scale: Scale = "db"
    top_db: float = 80.0
    amin: float = 1e-10
    ln_offset: float = 0.0
    ln_divisor: float = 1.0
    n_mfcc: int = 40
    vmin: float = -80.0
    vmax: float = 0.0
    mode: Mode = "grey"
    cmap: str = "magma"
    duration: float | None = None
    crop: Crop = "center"
    tile: float | None = None
    tile_hop: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    # ---------------------------------------------------------------- checks
    def validate(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name}={value!r} must be a positive integer")

        def real(name: str, *, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"{name}={value!r} must be a finite number")

        for name in ("sr", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            positive_int(name)
        for name, top in LIMITS.items():  # absurd values would allocate gigabytes per clip
            if getattr(self, name) > top:
                raise ConfigError(f"{name}={getattr(self, name)!r} is beyond the supported maximum {top}")
        for name in ("fmin", "top_db", "amin", "ln_offset", "ln_divisor", "vmin", "vmax", "preemphasis"):
            real(name)
        for name in ("fmax", "duration", "tile", "tile_hop"):
            real(name, optional=True)
        for name in ("preset", "window", "cmap"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be a string")
        if not isinstance(self.center, bool):
            raise ConfigError(f"center={self.center!r} must be true or false")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed={self.seed!r} must be an integer in 0..4294967295")
        if self.amin <= 0 or self.ln_divisor <= 0:
            raise ConfigError(f"amin={self.amin} and ln_divisor={self.ln_divisor} must be > 0")
        for name in ("duration", "tile", "tile_hop"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_SECONDS:
                raise ConfigError(f"{name}={value} must be > 0 and at most {MAX_SECONDS:g} seconds")
        if self.hop_seconds is not None and self.hop_seconds * self.sr < 1:
            raise ConfigError(f"tile_hop={self.hop_seconds} is shorter than one sample at sr={self.sr}")
        if self.win_length is not None:
            positive_int("win_length")
            if self.win_length > self.n_fft:
                raise ConfigError(f"win_length={self.win_length} must be <= n_fft={self.n_fft}")
        if self.feature not in ("logmel", "mfcc"):
            raise ConfigError(f"feature={self.feature!r} must be 'logmel' or 'mfcc'")
        if self.mode not in ("grey", "deltas", "colormap"):
            raise ConfigError(f"mode={self.mode!r} must be 'grey', 'deltas' or 'colormap'")
        if self.crop not in ("start", "center", "random"):
            raise ConfigError(f"crop={self.crop!r} must be 'start', 'center' or 'random'")
        if self.mel_scale not in ("slaney", "kaldi"):
            raise ConfigError(f"mel_scale={self.mel_scale!r} must be 'slaney' or 'kaldi'")
        if self.pad_mode not in ("constant", "reflect"):
            raise ConfigError(f"pad_mode={self.pad_mode!r} must be 'constant' or 'reflect'")
        if self.scale not in ("db", "ln"):
            raise ConfigError(f"scale={self.scale!r} must be 'db' or 'ln'")
        nyquist = self.sr / 2
        if not 0 <= self.fmin < self.fmax_hz:
            raise ConfigError(
                f"fmin={self.fmin} must be >= 0 and below fmax={self.fmax_hz} (sr={self.sr})"
            )
        if self.fmax_hz > nyquist:
            raise ConfigError(f"fmax={self.fmax} must be <= sr/2={nyquist:g}")
        if self.top_db <= 0:
            raise ConfigError(f"top_db={self.top_db} must be > 0")
        if not self.vmax > self.vmin:
            raise ConfigError(f"vmax={self.vmax} must be greater than vmin={self.vmin}")
        if not 0 <= self.preemphasis < 1:
            raise ConfigError(f"preemphasis={self.preemphasis} must be in [0, 1)")
        if self.feature == "mfcc" and self.n_mfcc > self.n_mels:
            raise ConfigError(f"n_mfcc={self.n_mfcc} must be <= n_mels={self.n_mels}")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError(f"duration={self.duration} must be > 0 seconds")
        if self.tile is not None:
            if self.tile <= 0:
                raise ConfigError(f"tile={self.tile} must be > 0 seconds")
            if self.duration is not None:
                raise ConfigError("--duration and --tile exclude each other: pick one")
            if self.tile_hop is not None and self.tile_hop <= 0:
                raise ConfigError(f"tile_hop={self.tile_hop} must be > 0 seconds")
        elif self.tile_hop is not None:
            raise ConfigError("tile_hop needs tile: add --tile SECONDS")
        if self.mode == "colormap":
            import matplotlib

            if self.cmap not in matplotlib.colormaps:
                raise ConfigError(f"cmap={self.cmap!r} is not a matplotlib colormap (try 'magma')")

    # ------------------------------------------------------------ derived
    @property
    def fmax_hz(self) -> float:
        return float(self.sr) / 2 if self.fmax is None else float(self.fmax)

    @property
    def n_rows(self) -> int:
        """Image height in pixels: one row per mel band (or per MFCC coefficient)."""
        return self.n_mfcc if self.feature == "mfcc" else self.n_mels

    @property
    def channels(self) -> int:
        return 1 if self.mode == "grey" else 3

    @property
    def window_seconds(self) -> float | None:
        """Length of audio behind one image, or None when images keep the clip's length."""
        return self.tile if self.tile is not None else self.duration

    @property
    def hop_seconds(self) -> float | None:
        if self.tile is None:
            return None
        return self.tile_hop if self.tile_hop is not None else self.tile / 2

    def frames(self, n_samples: int) -> int:
        """Number of image columns for ``n_samples`` of audio at ``sr``."""
        n = n_samples - (1 if self.preemphasis else 0)
        if self.center:
            return 1 + n // self.hop_length
        return 1 + max(0, n - self.n_fft) // self.hop_length

    # ------------------------------------------------------------ serialise
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash of everything that changes pixels; stamped into every PNG."""
        return _digest(self)

    def save(self, folder: Path) -> Path:
        return save_config(self, folder, CONFIG_NAME, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> SpectrogramConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown spectrogram setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> SpectrogramConfig:
        path, data = read_config(path, CONFIG_NAME, what="spectrogram config", make="run spec2img first",
                                 remake="re-run spec2img to rewrite it")
        try:
            return cls.from_dict(data)
        except (ConfigError, TypeError) as exc:  # name the file as well as the key
            raise ConfigError(f"{path}: {exc}") from None

    def replace(self, **changes) -> SpectrogramConfig:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------- stage configs on disk
def save_config(config, folder: Path, name: str, *, extra: dict | None = None, sort_keys: bool = False) -> Path:
    """Write a stage's config dataclass as ``folder/name`` (indented JSON, atomic); returns the path.

    The one writer of stage configs (``spectrogram.json``, ``train.json``); ``extra`` keys are
    written after the fields (facts about the run that are not settings).
    """
    from .io import write_atomic

    path = Path(folder) / name
    data = {**dataclasses.asdict(config), **(extra or {})}
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=sort_keys) + "\n").encode())
    return path


def read_config(path: Path, name: str, *, what: str, make: str, remake: str) -> tuple[Path, dict]:
    """``(file, settings)`` of a stage config: ``path`` is the JSON file or a folder holding ``name``.

    The one reader of stage configs: a :class:`ConfigError` names the file and says what to run
    (``make`` when it is missing, ``remake`` when it is unreadable or not a JSON object).
    """
    path = Path(path)
    if path.is_dir():
        path = path / name
    from .paths import regular_file_error

    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"{path}: no {what} here; {make}")
    bad = regular_file_error(path, what)
    if bad:
        raise ConfigError(bad)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); {remake}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object of settings; {remake}")
    return path, data


#: The preset ``spec2img AUDIO_DIR IMAGES_DIR`` uses: the AudioSet backbone's own front-end, so
#: that ``classify fit IMAGES_DIR`` trains the strongest measured path (README, "Which backbone").
DEFAULT_PRESET = "efficientat"
#: Older names still accepted: ``default`` was the 44.1 kHz log-mel preset's name until it stopped
#: being the default (spectrogram.json files written then say ``"preset": "default"``).
PRESET_ALIASES = {"default": "logmel"}

PRESETS: dict[str, dict] = {
    # The original general-purpose log-mel: 44.1 kHz, 2048/512, 128 mels 20 Hz..sr/2, 80 dB
    # (the field defaults of SpectrogramConfig); for ImageNet backbones and for sounds above 15 kHz.
    "logmel": {},
    # For ImageNet backbones on small sets: magma colours (what ImageNet filters respond to) and a
    # 23 ms hop, so a 5 s clip is 216 frames and, with `classify fit --input-height 224`, the
    # network sees the public notebooks' 224 x ~224 geometry without squashing (see README).
    "imagenet": {"mode": "colormap", "cmap": "magma", "hop_length": 1024},
    # The public Kaggle kernels' feature: 40 MFCCs (their images were also squashed to 224x224).
    "mfcc": {"feature": "mfcc", "n_mfcc": 40, "vmin": -250.0, "vmax": 250.0},
    # EfficientAT (Schmid et al. 2023) AudioSet models: 32 kHz, pre-emphasis 0.97, 25 ms Hann window
    # in a 1024-point FFT, 10 ms hop, 128 Kaldi mel bands 0-15 kHz, (ln(mel + 1e-5) + 4.5) / 5.
    # torch.stft(center=True) pads by reflection: with zero padding the first and last two frames
    # differ from the reference log-mel by up to 1.4 (checked against EfficientAT's own output).
    # Pixel range -1.5..3.5 of that value: one grey level is 0.0196 (about 0.43 dB).
    "efficientat": {
        "sr": 32000,
        "n_fft": 1024,
        "win_length": 800,
        "hop_length": 320,
        "window": "hann_symmetric",
        "pad_mode": "reflect",
        "n_mels": 128,
        "fmin": 0.0,
        "fmax": 15000.0,
        "mel_scale": "kaldi",
        "preemphasis": 0.97,
        "scale": "ln",
        "amin": 1e-5,
        "ln_offset": 4.5,
        "ln_divisor": 5.0,
        "vmin": -1.5,
        "vmax": 3.5,
    },
}


def from_preset(name: str = DEFAULT_PRESET, **overrides) -> SpectrogramConfig:
    """Build a config from a named preset, then apply explicit overrides (None means 'keep')."""
    name = PRESET_ALIASES.get(name, name)
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r} is unknown; choose one of {', '.join(PRESETS)}")
    values = {"preset": name, **PRESETS[name]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    explicit = {k for k, v in overrides.items() if v is not None}
    if values.get("scale", "db") == "ln" and "top_db" in explicit:  # it would change the digest, not a pixel
        raise ConfigError(f"top_db={overrides['top_db']:g} has no effect on preset {name!r} (its ln scale draws "
                          f"the fixed range vmin..vmax); drop --top-db, or use --preset logmel for a dB range")
    if values.get("feature") == "mfcc" and name != "mfcc" and "vmin" not in explicit:
        values.update(vmin=PRESETS["mfcc"]["vmin"], vmax=PRESETS["mfcc"]["vmax"])
    elif values.get("scale", "db") == "db" and "top_db" in explicit and "vmin" not in explicit:
        values["vmin"] = -float(values["top_db"])  # the image spans exactly the top_db range
    return SpectrogramConfig(**values)


@functools.lru_cache(maxsize=64)
def _digest(cfg: SpectrogramConfig) -> str:  # the config is frozen: hash it once, not per clip
    blob = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:16]
