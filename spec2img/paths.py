"""Walking input folders: which entries are audio, which are refused, and why (one rule for every
command that reads a folder: ``spec2img`` convert, ``spec2img audit``, ``classify predict``, serve).

Rules (tested by ``tests/test_hostile.py``):

* Every entry whose name looks like audio (:data:`AUDIO_LIKE`) gets an :class:`Entry`, whatever it
  turns out to be; other files are not listed.
* Symbolic links are followed when their target stays inside the walked folder; a link leading
  outside is refused (status ``skipped``) unless ``follow_symlinks=True`` (``--follow-symlinks``).
  A dangling link or a link loop is ``failed``. A linked folder is walked by the same rule.
* Hidden entries (a name starting with ``.``, or inside a hidden folder) are ``skipped``.
* Only regular files are ever opened: FIFOs, sockets and devices are ``skipped``; a folder named
  ``x.wav`` is ``failed`` (and walked as a folder).
* Extensions libsndfile cannot decode (:data:`UNSUPPORTED_EXTENSIONS`: ``.m4a``, ``.aac``, ``.wma``,
  ...) are ``failed`` with the conversion that would work.

Nothing here decodes audio or imports numpy.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64"}
)
# Audio that libsndfile cannot decode: listed (so the file is not dropped silently), never opened.
UNSUPPORTED_EXTENSIONS = frozenset(
    {".m4a", ".m4b", ".mp4", ".aac", ".wma", ".amr", ".ape", ".wv", ".webm", ".mka", ".3gp", ".ac3", ".ra"}
)
AUDIO_LIKE = AUDIO_EXTENSIONS | UNSUPPORTED_EXTENSIONS
MAX_DEPTH = 64


@dataclass(frozen=True)
class Entry:
    """One input: ``path`` (root / rel, as found), ``rel`` (POSIX, relative to the walked folder;
    bytes that are not UTF-8 shown as ``\\xNN``), ``status`` (``ok`` to read, ``skipped`` by rule,
    ``failed``) and ``error`` (why, naming the path and what would work)."""

    path: Path
    rel: str
    status: str = "ok"
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def display(name: str) -> str:
    """``name`` safe to print and to store as UTF-8 (undecodable bytes as ``\\xNN``)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def walk_audio(root: Path, *, follow_symlinks: bool = False) -> list[Entry]:
    """Every audio-looking entry under ``root`` (recursively, sorted by ``rel``) with its status.

    Raises ``NotADirectoryError``/``FileNotFoundError`` when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(root))
    real_root = os.path.realpath(root)
    out: list[Entry] = []

    def add(path: str, rel: tuple[str, ...], status: str, error: str = "") -> None:
        out.append(Entry(Path(path), display("/".join(rel)), status, error))

    def visit(folder: str, rel: tuple[str, ...], hidden: bool, stack: tuple[str, ...]) -> None:
        try:
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            add(folder, rel or (".",), "failed", f"{display(folder)}: cannot list this folder ({exc.strerror})")
            return
        for e in items:
            sub = rel + (e.name,)
            shown = display(e.path)
            is_hidden = hidden or e.name.startswith(".")
            audio_like = os.path.splitext(e.name)[1].lower() in AUDIO_LIKE
            outside = False
            try:
                if e.is_symlink():
                    try:
                        target = os.path.realpath(e.path, strict=True)
                    except OSError as exc:
                        if audio_like:
                            what = ("a symlink loop" if exc.errno == errno.ELOOP or isinstance(exc, RuntimeError)
                                    else f"a dangling symlink (-> {display(os.readlink(e.path))})")
                            add(e.path, sub, "failed", f"{shown}: {what}; fix or remove the link")
                        continue
                    outside = not _inside(target, real_root)
                    st = os.stat(target)
                    if stat.S_ISDIR(st.st_mode):
                        if outside and not follow_symlinks:
                            add(e.path, sub, "skipped", f"{shown}: symlink to a folder outside the input folder "
                                f"({display(target)}), not followed; pass --follow-symlinks to read it")
                        elif target in stack:
                            add(e.path, sub, "failed", f"{shown}: symlink loop (-> {display(target)}); remove the link")
                        elif len(stack) < MAX_DEPTH:
                            visit(e.path, sub, is_hidden, stack + (target,))
                        continue
                else:
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        if audio_like:
                            add(e.path, sub, "failed", f"{shown}: a folder named like an audio file; "
                                "its contents are listed separately")
                        if len(stack) < MAX_DEPTH:
                            visit(e.path, sub, is_hidden, stack + (os.path.realpath(e.path),))
                        continue
            except OSError as exc:
                if audio_like:
                    add(e.path, sub, "failed", f"{shown}: cannot stat ({exc.strerror})")
                continue
            if not audio_like:
                continue
            suffix = os.path.splitext(e.name)[1].lower()
            if is_hidden:
                add(e.path, sub, "skipped", f"{shown}: hidden (a name starting with '.'); rename it to include it")
            elif outside and not follow_symlinks:
                add(e.path, sub, "skipped", f"{shown}: symlink to {display(target)}, outside the input folder; "
                    "pass --follow-symlinks to read it")
            elif not stat.S_ISREG(st.st_mode):
                add(e.path, sub, "skipped", f"{shown}: {_kind(st.st_mode)}; only regular files are read")
            elif suffix in UNSUPPORTED_EXTENSIONS:
                add(e.path, sub, "failed", f"{shown}: {suffix} is a format libsndfile cannot decode; convert it "
                    f"to WAV or FLAC (e.g. ffmpeg -i in{suffix} out.wav)")
            elif shown != e.path:
                add(e.path, sub, "failed", f"{shown}: the file name is not valid UTF-8; rename it")
            else:
                add(e.path, sub, "ok")

    visit(str(root), (), False, (real_root,))
    out.sort(key=lambda x: x.rel)
    return out


def check_input(path: Path) -> Entry:
    """The status of a path given explicitly (command line): regular files are ``ok``; a missing
    path, a dangling link, a link loop, a folder or a special file is ``failed`` and never opened."""
    path = Path(path)
    shown = display(str(path))
    err = regular_file_error(path)
    return Entry(path, shown, "failed" if err else "ok", err or "")


def regular_file_error(path: Path, what: str = "") -> str | None:
    """None when ``path`` is a readable regular file (links followed), else one line saying why not."""
    shown = display(str(path))
    label = f"{shown}{' (' + what + ')' if what else ''}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"{label}: a dangling symlink (-> {display(os.readlink(path))}); fix or remove the link"
        return f"{label}: no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{label}: a symlink loop; fix or remove the link"
        return f"{label}: cannot read ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return f"{label}: a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return f"{label}: {_kind(st.st_mode)}; only regular files are read"
    if not os.access(path, os.R_OK):
        return f"{label}: permission denied; make it readable (chmod +r) or run as its owner"
    return None
