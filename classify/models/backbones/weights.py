"""Finding the EfficientAT checkpoint: a given file, an environment variable, the shipped copy, the
torch cache, a download.

Resolution order (first hit wins):

1. ``--weights FILE`` (the ``weights`` argument);
2. the environment variable ``SPEC2IMG_EFFICIENTAT_WEIGHTS`` (a file path);
3. the copy shipped inside the package (``assets/efficientat``, sha256-checked on load:
   :mod:`classify.models.assets`), so a fresh install works offline with no flag;
4. ``torch.hub.get_dir()/checkpoints/mn04_as_mAP_432.pt``, the cache torchvision's weights use
   (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``);
5. a download from the EfficientAT GitHub release into that cache, checked against its sha256.

A file named explicitly (1, 2) that does not exist is an error, not a reason to download.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch.hub

from ...errors import WeightsError
from ..assets import asset_path, sha256_of

log = logging.getLogger(__name__)

FILENAME = "mn04_as_mAP_432.pt"
URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"
SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
ENV_VAR = "SPEC2IMG_EFFICIENTAT_WEIGHTS"


def cache_path(filename: str = FILENAME) -> Path:
    """Where the checkpoint is cached: ``torch.hub.get_dir()/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def resolve_weights(
    weights: Path | str | None = None,
    *,
    url: str | None = None,
    sha256: str | None = SHA256,
    download: bool = True,
) -> Path:
    """Path of the EfficientAT checkpoint, downloading it into the torch cache if needed.

    Args:
        weights: an explicit file (``--weights``); wins over everything else.
        url: where to download from when nothing local is found (default :data:`URL`; a mirror,
            a local server or a ``file://`` URL in tests).
        sha256: expected hex digest of the download (None skips the check).
        download: False never touches the network.

    Raises:
        WeightsError: one line naming where it looked and what to do.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file; pass the path of {FILENAME} to --weights")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path} (from ${ENV_VAR}): no such file; fix or unset the variable")
        return path
    shipped = asset_path("efficientat_mn04")
    if shipped is not None:
        return shipped
    cached = cache_path()
    if cached.is_file():
        return cached
    where = f"no --weights, ${ENV_VAR} unset, no copy shipped with this installation, not in {cached.parent}"
    if not download:
        raise WeightsError(f"EfficientAT weights {FILENAME} not found ({where}); pass --weights FILE")
    return _download(url or URL, cached, sha256=sha256, where=where)


def _download(url: str, dst: Path, *, sha256: str | None, where: str) -> Path:
    log.info("downloading EfficientAT weights from %s to %s", url, dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Writes to a temporary file beside dst and renames it only when complete.
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=None, progress=sys.stderr.isatty())
    except Exception as exc:  # urllib's URLError/HTTPError, OSError, ValueError for a bad URL
        reason = str(getattr(exc, "reason", "") or exc).strip() or type(exc).__name__
        raise WeightsError(
            f"EfficientAT weights {FILENAME} not found ({where}) and the download from {url} failed "
            f"({reason}); when offline, download it elsewhere and pass --weights FILE or set ${ENV_VAR}"
        ) from None
    if sha256 is not None:
        got = sha256_of(dst)
        if got != sha256:
            dst.unlink(missing_ok=True)
            raise WeightsError(
                f"{url}: downloaded file has sha256 {got[:12]}..., expected {sha256[:12]}...; "
                "retry, or pass a verified copy with --weights FILE"
            )
    return dst
