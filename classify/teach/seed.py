"""Start a teach session from an existing run folder: its classes and its training clips as examples.

The run's ``train.json`` names its image folder; that folder's ``spec2img_run.json`` names the audio
folder and ``manifest.csv`` lists each clip's source and labels. Each labelled clip (single label,
status ``ok``) is added to the session like an uploaded example, so Train then refines the run's
classes or adds new ones to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import TrainConfig
from ..errors import ClassifyError
from .session import Session, TeachError

log = logging.getLogger(__name__)


def seed_from_run(session: Session, run_dir: Path, *, max_bytes: int = 50 * 2**20) -> int:
    """Add ``run_dir``'s classes and training clips to ``session`` (once: a session that has
    examples already is left as it is). Returns the number of examples added."""
    from spec2img.manifest import read_manifest, read_run_info

    if session.examples:
        log.info("%s has examples already; not re-adding those of %s", session.root, run_dir)
        return 0
    cfg, where = TrainConfig.load_with_where(Path(run_dir))
    candidates = [Path(where.get("images_absolute", cfg.images)), Path(run_dir) / where.get("images_from_run_dir", "")]
    images = next((p for p in candidates if (p / "manifest.csv").is_file()), None)
    if images is None:
        raise ClassifyError(f"{run_dir}: its image folder ({cfg.images}) is not here; cannot start from its examples")
    audio_dir = Path(read_run_info(images).get("audio_dir") or "")
    if not audio_dir.is_dir():
        raise ClassifyError(f"{images}: its audio folder {audio_dir} is not here; cannot start from its examples")
    rows = read_manifest(images)
    n = 0
    for _, r in rows.iterrows():
        if r["status"] != "ok" or len(r["labels"]) != 1:
            continue
        label = r["labels"][0]
        if label not in session.classes:
            try:
                session.add_class(label)
            except TeachError as exc:
                log.warning("class %r of %s skipped: %s", label, run_dir, exc)
                continue
        try:
            session.add_example(label, (audio_dir / r["source"]).read_bytes(), max_bytes=max_bytes)
            n += 1
        except (TeachError, OSError) as exc:
            log.warning("%s skipped: %s", r["source"], exc)
    log.info("started from %s: %d examples in %d classes", run_dir, n, len(session.classes))
    return n
