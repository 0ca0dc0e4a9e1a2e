"""A teach session's folder: classes, examples as audio files, the labels CSV (no torch).

Layout of ``SESSION``::

    session.json        classes in order, example ids and their class, the runs trained
    audio/ex0001.wav    examples of the known classes (16-bit WAV, mono, their own sample rate)
    labels.csv          fname,label: spec2img's Freesound layout, so `spec2img SESSION/audio
                        SESSION/images --labels SESSION/labels.csv` renders them
    background/bg0001.wav  "none of these" recordings (the ``_background`` class): not a class of the
                        model, they inform its unknown threshold
    images/             spec2img's output for audio/ (rendered when Train is pressed)
    runs/teach-001/     ordinary run folders, one per Train

Names: a class name is stored only in ``session.json`` and ``labels.csv``, never used as a path;
file names are made by the session (``ex`` + a counter). Limits: :class:`TeachConfig`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from spec2img import audio
from spec2img.errors import AudioError
from spec2img.io import write_atomic

from ..errors import ClassifyError
from ..serve.engine import UploadError

log = logging.getLogger(__name__)

BACKGROUND = "_background"
SESSION_FILE = "session.json"
LABELS_CSV = "labels.csv"


class TeachError(UploadError):
    """A teach request that cannot be done; ``status`` is the HTTP status to answer."""


@dataclass(frozen=True)
class TeachConfig:
    """How teach mode runs (``classify serve --teach`` flags and fixed limits).

    ``example_seconds``: length of a recorded example, and the window the model sees (its crop).
    ``max_example_seconds``: the longest example accepted (uploads). ``min_per_class``: examples
    each class needs before Train. ``head_c``: the logistic head's inverse L2 strength.
    """

    example_seconds: float = 2.0
    max_example_seconds: float = 30.0
    max_examples: int = 2000
    max_classes: int = 100
    max_name: int = 64
    min_per_class: int = 3
    head_c: float = 1.0
    valid_pct: float = 0.2
    preset: str = "efficientat"

    def __post_init__(self) -> None:
        if not 0.5 <= self.example_seconds <= 10:
            raise ClassifyError(f"--example-seconds={self.example_seconds} must be between 0.5 and 10")
        if self.max_example_seconds < self.example_seconds:
            raise ClassifyError("the longest example must be at least --example-seconds long")


def check_name(name, cfg: TeachConfig) -> str:
    """A class name as given, or :class:`TeachError` (empty, too long, control characters, a name
    starting with ``_`` other than ``_background``, or not NFC-normalised)."""
    if not isinstance(name, str) or not name.strip():
        raise TeachError("a class name must be a non-empty string", 400)
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) > cfg.max_name:
        raise TeachError(f"class name {name[:20]!r}... is longer than {cfg.max_name} characters", 400)
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise TeachError(f"class name {name!r} holds control characters; use letters, digits, spaces", 400)
    if name.startswith("_") and name != BACKGROUND or name.casefold() == "unknown":
        raise TeachError(f"class name {name!r} is reserved (names starting with '_' other than "
                         f"{BACKGROUND}, and 'unknown'); pick another", 400)
    return name


EXAMPLE_FILE = re.compile(r"(audio/ex|background/bg)\d{4,9}\.wav")


def read_session(path: Path) -> dict:
    """``session.json``'s content ({} when absent), every example's file checked to be one the
    session names itself (``audio/exNNNN.wav``, ``background/bgNNNN.wav``): an edited file cannot
    point a request outside the session folder."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        examples = data.get("examples", [])
        classes = data.get("classes", [])
        ok = (isinstance(classes, list) and all(isinstance(c, str) for c in classes)
              and all(isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get("file"), str)
                      and EXAMPLE_FILE.fullmatch(e["file"]) and Path(e["file"]).stem == e["id"]
                      and e.get("label") in classes for e in examples))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        ok = False
    if not ok:
        raise ClassifyError(f"{path}: not a teach session file (or edited by hand); start a new session folder")
    return data


class Session:
    """The examples of a teach session on disk (thread-safe). Methods raise :class:`TeachError`."""

    def __init__(self, root: Path, cfg: TeachConfig | None = None):
        self.root = Path(root)
        self.cfg = cfg or TeachConfig()
        self.lock = threading.RLock()
        for sub in ("audio", "background", "runs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        data = read_session(self.root / SESSION_FILE)
        self.classes: list[str] = list(data.get("classes", []))
        self.examples: dict[str, dict] = {e["id"]: e for e in data.get("examples", [])}
        self.counter = int(data.get("counter", 0))
        self.runs: list[str] = list(data.get("runs", []))

    # ------------------------------------------------------------------ state
    def save(self) -> None:
        data = {"classes": self.classes, "examples": list(self.examples.values()), "counter": self.counter,
                "runs": self.runs}
        write_atomic(self.root / SESSION_FILE, (json.dumps(data, indent=2) + "\n").encode())
        self.write_labels()

    def write_labels(self) -> Path:
        """``labels.csv`` (``fname,label``) of the known classes' examples."""
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(["fname", "label"])
        for e in self.examples.values():
            if e["label"] != BACKGROUND:
                out.writerow([Path(e["file"]).name, e["label"]])
        path = self.root / LABELS_CSV
        write_atomic(path, buf.getvalue().encode())
        return path

    def describe(self) -> dict:
        with self.lock:
            return {"classes": [{"name": c, "examples": [self.public(e) for e in self.examples.values()
                                                          if e["label"] == c]} for c in self.classes],
                    "runs": self.runs, "example_seconds": self.cfg.example_seconds,
                    "max_example_seconds": self.cfg.max_example_seconds,
                    "min_per_class": self.cfg.min_per_class, "background": BACKGROUND}

    @staticmethod
    def public(e: dict) -> dict:
        return {"id": e["id"], "label": e["label"], "seconds": e["seconds"]}

    # ------------------------------------------------------------------ classes
    def add_class(self, name) -> str:
        with self.lock:
            name = check_name(name, self.cfg)
            if name in self.classes:
                raise TeachError(f"class {name!r} exists already", 409)
            if len(self.classes) >= self.cfg.max_classes:
                raise TeachError(f"at most {self.cfg.max_classes} classes in a session", 413)
            self.classes.append(name)
            self.save()
            return name

    def rename_class(self, old: str, new) -> str:
        with self.lock:
            self.check_class(old)
            new = check_name(new, self.cfg)
            if new in self.classes and new != old:
                raise TeachError(f"class {new!r} exists already", 409)
            if (old == BACKGROUND) != (new == BACKGROUND):
                raise TeachError(f"{BACKGROUND} cannot be renamed, nor another class renamed to it", 400)
            self.classes[self.classes.index(old)] = new
            for e in self.examples.values():
                if e["label"] == old:
                    e["label"] = new
            self.save()
            return new

    def delete_class(self, name: str) -> None:
        with self.lock:
            self.check_class(name)
            for e in [e for e in self.examples.values() if e["label"] == name]:
                self._remove(e)
            self.classes.remove(name)
            self.save()

    def check_class(self, name: str) -> None:
        if name not in self.classes:
            raise TeachError(f"no class {name!r}; create it first (POST /api/teach/classes)", 404)

    # ------------------------------------------------------------------ examples
    def add_example(self, label: str, data: bytes, *, max_bytes: int) -> dict:
        """Decode the audio file ``data``, save it as ``audio/exNNNN.wav`` (or ``background/``)."""
        with self.lock:
            self.check_class(label)
            if len(self.examples) >= self.cfg.max_examples:
                raise TeachError(f"at most {self.cfg.max_examples} examples in a session", 413)
        if not data:
            raise TeachError("the example is empty (0 bytes); send the bytes of an audio file", 400)
        if len(data) > max_bytes:
            raise TeachError(f"the example is {len(data) / 2**20:.1f} MB; at most {max_bytes / 2**20:g} MB", 413)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-", suffix=".audio")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                info = audio.probe(Path(tmp))
                if info.duration > self.cfg.max_example_seconds:
                    raise TeachError(f"the example is {info.duration:.1f} s long; at most "
                                     f"{self.cfg.max_example_seconds:g} s", 413)
                y, sr = audio.load(Path(tmp))
            except AudioError as exc:
                raise TeachError(str(exc).replace(tmp, "the example"), 422) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        with self.lock:
            self.check_class(label)
            self.counter += 1
            bg = label == BACKGROUND
            ex_id = f"{'bg' if bg else 'ex'}{self.counter:04d}"
            rel = f"{'background' if bg else 'audio'}/{ex_id}.wav"
            buf = io.BytesIO()
            sf.write(buf, np.clip(y, -1, 1), sr, format="WAV", subtype="PCM_16")
            write_atomic(self.root / rel, buf.getvalue())
            e = {"id": ex_id, "file": rel, "label": label, "seconds": round(len(y) / sr, 3)}
            self.examples[ex_id] = e
            self.save()
            return e

    def example(self, ex_id: str) -> dict:
        with self.lock:
            e = self.examples.get(ex_id)
            if e is None:
                raise TeachError(f"no example {ex_id!r}", 404)
            return e

    def delete_example(self, ex_id: str) -> None:
        with self.lock:
            self._remove(self.example(ex_id))
            self.save()

    def _remove(self, e: dict) -> None:
        (self.root / e["file"]).unlink(missing_ok=True)
        del self.examples[e["id"]]

    def path(self, e: dict) -> Path:
        return self.root / e["file"]

    # ------------------------------------------------------------------ training inputs
    def known(self) -> list[str]:
        return [c for c in self.classes if c != BACKGROUND]

    def check_trainable(self) -> None:
        counts = {c: sum(e["label"] == c for e in self.examples.values()) for c in self.known()}
        if len(counts) < 2:
            raise TeachError("teach at least two classes before Train", 409)
        short = [c for c, n in counts.items() if n < self.cfg.min_per_class]
        if short:
            raise TeachError(f"class(es) {', '.join(map(repr, short))} need at least {self.cfg.min_per_class} "
                             "examples each before Train", 409)

    def background_files(self) -> list[Path]:
        return [self.path(e) for e in self.examples.values() if e["label"] == BACKGROUND]

    def next_run(self) -> Path:
        with self.lock:
            n = len(self.runs) + 1
            path = self.root / "runs" / f"teach-{n:03d}"
            while path.exists():
                n += 1
                path = self.root / "runs" / f"teach-{n:03d}"
            return path
