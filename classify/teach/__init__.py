"""Teach mode (``classify serve --teach``): examples recorded or uploaded in the page, Train, a live model.

:mod:`.session` keeps the examples on disk (audio files + ``labels.csv``), :mod:`.trainer` computes
their frozen features as they arrive and writes ordinary run folders (the head-only fit), and
:mod:`.routes` adds the JSON API to ``classify serve``'s app. Importing this package loads torch
only when a trainer is built.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from .session import BACKGROUND, Session, TeachConfig, TeachError

__all__ = ["BACKGROUND", "Session", "TeachConfig", "TeachError", "make_teacher", "serve_teach"]

log = logging.getLogger(__name__)


def make_teacher(session_dir: Path, config, teach_cfg: TeachConfig | None = None, *, start_from: Path | None = None):
    """A :class:`~classify.teach.routes.Teacher` over ``session_dir`` (created when missing) with a
    fresh serve :class:`~classify.serve.engine.Engine`; the latest run of the session (if any) is live."""
    from ..prediction.ensemble import torch_scorer
    from ..serve.engine import Engine
    from .routes import Teacher
    from .trainer import Trainer

    session = Session(Path(session_dir), teach_cfg)
    if start_from is not None:
        from .seed import seed_from_run

        seed_from_run(session, Path(start_from))
    trainer = Trainer(session, threads=config.threads if config.threads > 1 else None)
    engine = Engine([], config)
    if session.runs and (session.root / "runs" / session.runs[-1] / "model.pt").is_file():
        engine.swap([torch_scorer(session.root / "runs" / session.runs[-1])])
    for e in list(session.examples.values()):  # features of examples from an earlier session, once
        trainer.add(session.path(e))
    threading.Thread(target=warm_up, daemon=True).start()
    return Teacher(session, trainer, engine)


def warm_up() -> None:
    """Import what the first Train needs (scikit-learn, pandas, the libraries a run folder's
    versions.json names) while the user records, so the first Train is as quick as the next."""
    import pandas  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    from ..runfolder import versions

    versions()


def serve_teach(session_dir: Path, config, teach_cfg: TeachConfig | None = None, *,
                start_from: Path | None = None) -> None:
    """``classify serve --teach``: the page with its Teach tab, until Ctrl-C."""
    from ..serve.app import is_loopback, run
    from .routes import add_teach_routes

    if not is_loopback(config.host):
        log.warning("--host %s: anyone who can reach this port can add examples and train", config.host)
    teacher = make_teacher(session_dir, config, teach_cfg, start_from=start_from)
    run(teacher.engine, config, f"teach mode, session {session_dir}",
        add_routes=lambda app: add_teach_routes(app, teacher))
