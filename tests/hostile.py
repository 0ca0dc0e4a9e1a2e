"""A hostile corpus: every kind of odd file, name, label and setting a user (or an attacker) can
hand the pipeline. ``make_corpus(tmp_path)`` builds it; ``tests/test_hostile.py`` runs every
command over it. Add the next odd thing here, not in a one-off test, so that its whole class is
covered.
"""

from __future__ import annotations

import os
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 8000


def tone(freq: float = 440.0, *, seconds: float = 0.5, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav(path: Path, y: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone() if y is None else y, SR, subtype="PCM_16")
    return path


def sparse_wav(path: Path, *, gigabytes: float = 2.0, sr: int = 44100, channels: int = 2) -> Path:
    """A WAV whose header promises ``gigabytes`` of 16-bit PCM, stored as a sparse file (no disk used)."""
    data = int(gigabytes * 2**30) // (2 * channels) * (2 * channels)
    header = (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * 2 * channels, 2 * channels, 16) +
              b"data" + struct.pack("<I", data))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data)
    return path


NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
LONG = "x" * 200

# cells a spreadsheet would run as formulas (CSV injection): as labels and as file names
FORMULAS = ["=cmd|' -C calc'!A0", "+SUM(1)", "@x", "-2+3", "'=quoted", "\tx"]
FORMULA_FILES = ["=cmd|' -C calc'!A0.wav", "+SUM(1).wav", "@x.wav", "-2+3.wav"]

# labels a CSV can carry: none of them may decide a path, all must round-trip through the manifest
HOSTILE_LABELS = [
    "../../escape", "a/b", "/abs/olute", "..", ".", "rock;pop", "Rock;pop", "dog", "Dog",
    NFC, NFD, "L" * 300, "$x^$", "<script>alert(1)</script>", "back\\slash", "semi;colon;;", "con",
    " padded ", "tab\there", "quote\"d", "\ufb01le", "file", "class",  # ligature/plain: one identifier; a keyword
    *FORMULAS,
]


@dataclass
class Corpus:
    root: Path
    audio: Path  # the folder handed to spec2img / audit / predict
    outside: Path  # a folder next to it, that links point into
    labels_csv: Path  # hostile labels for the readable clips
    fifo: Path | None  # a FIFO named like audio (None where mkfifo is missing)
    expect: dict[str, str] = field(default_factory=dict)  # rel -> status every folder walk must give
    readable: list[str] = field(default_factory=list)  # rels converted without --follow-symlinks


def make_corpus(root: Path) -> Corpus:
    """Build the corpus under ``root`` (see the module docstring); fast (tiny 8 kHz clips)."""
    audio, outside = root / "audio", root / "outside"
    c = Corpus(root, audio, outside, root / "labels.csv", None)
    ok = {
        "plain.wav": None, "semi;colon.wav": None, f"{NFC}.wav": None, f"{NFD}.wav": None,
        "Case.wav": None, "case.wav": None, f"{LONG}.wav": None, "new\nline.wav": None,
        "sp ace.wav": None, "sub/deep.wav": None, "dir.wav/inner.wav": None,
        "anti.wav": np.stack([tone(), -tone()], axis=1),  # antiphase stereo: the mix is silent
        **{f"p{i:02d}.wav": tone(300 + 50 * i) for i in range(14)},
        **{name: None for name in FORMULA_FILES},
    }
    for rel, y in ok.items():
        wav(audio / rel, y)
    wav(outside / "secret.wav")
    os.symlink("plain.wav", audio / "link_in.wav")  # stays inside: followed
    os.symlink(outside / "secret.wav", audio / "link_out.wav")  # leaves: refused without --follow-symlinks
    os.symlink("/etc/passwd", audio / "passwd.wav")  # refused, never opened
    os.symlink("missing.wav", audio / "dangling.wav")
    os.symlink("loop_b.wav", audio / "loop_a.wav")
    os.symlink("loop_a.wav", audio / "loop_b.wav")
    os.symlink(outside, audio / "outdir")  # a linked folder outside: not walked
    os.symlink("..", audio / "sub" / "up")  # a folder loop: not walked forever
    wav(audio / ".hidden.wav")
    wav(audio / ".cache" / "x.wav")
    for ext in (".m4a", ".wma", ".aac"):
        (audio / f"song{ext}").write_bytes(b"\x00\x00\x00 ftypM4A junk")
    (audio / "empty.wav").write_bytes(b"")
    (audio / "junk.wav").write_bytes(b"this is not audio")
    (audio / "notes.txt").write_text("not audio by name: no row")
    bad = os.fsencode(str(audio)) + b"/bad\xff.wav"  # a name that is not UTF-8
    with open(bad, "wb") as fh:
        fh.write((audio / "plain.wav").read_bytes())
    if hasattr(os, "mkfifo"):
        c.fifo = audio / "fifo.wav"
        os.mkfifo(c.fifo)
        c.expect["fifo.wav"] = "skipped"
    c.readable = sorted([*ok, "link_in.wav"])
    c.expect.update({rel: "ok" for rel in c.readable})
    c.expect.update({
        "link_out.wav": "skipped", "passwd.wav": "skipped", "outdir": "skipped", "dangling.wav": "failed",
        "loop_a.wav": "failed", "loop_b.wav": "failed", "sub/up": "failed", ".hidden.wav": "skipped",
        ".cache/x.wav": "skipped", "song.m4a": "failed", "song.wma": "failed", "song.aac": "failed",
        "dir.wav": "failed", "bad\\xff.wav": "failed", "empty.wav": "ok", "junk.wav": "ok",
    })  # empty/junk are listed by the walk (status ok) and fail when decoded
    lines = ["fname,label"]
    labelled = [r for r in c.readable if "\n" not in r]  # a CSV cell can hold a newline, but keep it simple
    assert len(labelled) >= len(HOSTILE_LABELS), "every hostile label needs a clip: add p-files"
    for rel, label in zip(labelled, HOSTILE_LABELS):
        lines.append(f'"{rel}","{label.replace(chr(34), chr(34) * 2)}"')
    c.labels_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return c


# spectrogram.json values that must be refused by name (file + key), as the CLI refuses them
ABSURD_SETTINGS = [
    ("sr", 10**9), ("sr", 1e9), ("n_fft", 10**9), ("hop_length", 0), ("n_mels", 10**6), ("n_mels", -3),
    ("fmin", "low"), ("top_db", float("nan")), ("duration", -1.0), ("tile", 1e12), ("tile_hop", 1e-12),
    ("seed", -1), ("center", "yes"), ("window", 5), ("amin", 0.0), ("mode", "rainbow"), ("win_length", 10**7),
]
