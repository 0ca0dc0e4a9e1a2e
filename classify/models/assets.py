"""Files shipped with the package (the top-level ``assets/`` folder), each verified by sha256.

In an installed wheel they live in ``classify/_assets/`` (``pyproject.toml`` maps the folder
there); in a source checkout or an editable install, in the repository's ``assets/``. Nothing here
imports torch.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from ..errors import WeightsError

#: name -> (path inside assets/, sha256). Every shipped file is listed here and nowhere else.
ASSETS: dict[str, tuple[str, str]] = {
    "efficientat_mn04": ("efficientat/mn04_as_mAP_432.pt",
                         "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"),
    "audioset_labels": ("audioset/class_labels_indices.csv",
                        "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429"),
}


def asset_root() -> Path | None:
    """The folder holding the shipped assets, or None when this installation has none."""
    package = Path(__file__).resolve().parents[1]  # classify/ (this file is classify/models/assets.py)
    for candidate in (package / "_assets", package.parent / "assets"):
        if (candidate / ASSETS["efficientat_mn04"][0]).is_file():
            return candidate
    return None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def asset_path(name: str, *, root: Path | None = None) -> Path | None:
    """Path of shipped asset ``name`` after checking its sha256; None when it is not installed.

    Raises:
        WeightsError: the file exists but its content is not the one shipped (one line).
    """
    rel, expected = ASSETS[name]
    root = asset_root() if root is None else Path(root)
    if root is None or not (root / rel).is_file():
        return None
    path = root / rel
    if _verified(str(path), path.stat().st_mtime_ns, path.stat().st_size) != expected:
        raise WeightsError(f"{path}: sha256 does not match the shipped {name} (expected {expected[:12]}...); "
                           "the installation is damaged: reinstall the package (uv sync --reinstall)")
    return path


@lru_cache(maxsize=16)
def _verified(path: str, mtime_ns: int, size: int) -> str:
    return sha256_of(Path(path))
