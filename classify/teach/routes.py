"""Teach mode's JSON API, added to ``classify serve``'s app (:func:`add_teach_routes`).

Routes (all under ``/api/teach``; errors are JSON ``{"error", "status"}`` as the rest of the API):
``GET /api/teach`` the session (classes, examples, runs); ``POST /classes`` ``{"name"}``;
``POST /classes/rename`` ``{"old", "new"}``; ``POST /classes/delete`` ``{"name"}``;
``POST /examples?label=NAME`` with an audio file's bytes as the body; ``GET /examples/{id}`` its
WAV; ``DELETE /examples/{id}``; ``POST /train``; ``GET /download/run.zip`` and
``GET /download/model.onnx`` (the latest run). Class names travel in JSON bodies or query values,
never in a path; example ids are looked up in the session, never joined to a path.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from ..commands import build_report_quietly
from ..serve.app import read_body
from ..serve.engine import Engine
from .session import Session, TeachError
from .trainer import Trainer

log = logging.getLogger(__name__)

MAX_JSON = 4096


async def read_json_body(request: Request) -> dict:
    data = await read_body(request, MAX_JSON)
    try:
        obj = json.loads(data or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TeachError("send a JSON object, e.g. {\"name\": \"dog\"}", 400) from None
    if not isinstance(obj, dict):
        raise TeachError("send a JSON object, e.g. {\"name\": \"dog\"}", 400)
    return obj


class Teacher:
    """A session, its trainer and the engine the trained models go live in."""

    def __init__(self, session: Session, trainer: Trainer, engine: Engine):
        self.session, self.trainer, self.engine = session, trainer, engine
        self.last: dict | None = None
        engine.teach = self.describe

    def describe(self) -> dict:
        return {**self.session.describe(), "last_train": self.last}

    def train(self) -> dict:
        from ..openset_file import read_openset
        from ..prediction.ensemble import torch_scorer

        from ..errors import ClassifyError

        try:
            run_dir, metrics = self.trainer.train()
        except TeachError:
            raise
        except ClassifyError as exc:  # the fit's own one-line errors (too few clips for a split, ...)
            raise TeachError(f"cannot train: {exc}", 422) from None
        self.engine.swap([torch_scorer(run_dir)])
        found = read_openset(run_dir)
        self.last = {"run": run_dir.name, "seconds": round(metrics["teach_seconds"], 3),
                     "accuracy": metrics.get("accuracy"), "n_valid_clips": metrics.get("n_valid_clips"),
                     "unknown_threshold": None if found is None else found.threshold,
                     "classes": list(self.engine.classes)}
        threading.Thread(target=build_report_quietly, args=(run_dir,), daemon=True).start()
        return self.last

    def latest_run(self) -> Path:
        if not self.session.runs:
            raise TeachError("nothing trained yet: press Train first", 409)
        return self.session.root / "runs" / self.session.runs[-1]


def zip_folder(folder: Path) -> bytes:
    """The files of ``folder`` (regular files, no links, no lock) as zip bytes, paths under its name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink() and not p.name.startswith("."):
                z.write(p, Path(folder.name) / p.relative_to(folder))
    return buf.getvalue()


def add_teach_routes(app: FastAPI, teacher: Teacher) -> None:
    s, engine = teacher.session, teacher.engine

    @app.get("/api/teach")
    async def state():
        return teacher.describe()

    @app.post("/api/teach/classes")
    async def add_class(request: Request):
        body = await read_json_body(request)
        return {"name": s.add_class(body.get("name")), "teach": teacher.describe()}

    @app.post("/api/teach/classes/rename")
    async def rename_class(request: Request):
        body = await read_json_body(request)
        return {"name": s.rename_class(body.get("old"), body.get("new")), "teach": teacher.describe()}

    @app.post("/api/teach/classes/delete")
    async def delete_class(request: Request):
        body = await read_json_body(request)
        s.delete_class(body.get("name"))
        return {"teach": teacher.describe()}

    @app.post("/api/teach/examples")
    async def add_example(request: Request, label: str = Query(..., max_length=256)):
        data = await read_body(request, engine.config.max_bytes)

        def work():
            e = s.add_example(label, data, max_bytes=engine.config.max_bytes)
            teacher.trainer.add(s.path(e))  # the frozen features, once, as the example arrives
            return e

        e = await run_in_threadpool(work)
        return {"example": s.public(e), "teach": teacher.describe()}

    @app.get("/api/teach/examples/{ex_id}")
    async def example_audio(ex_id: str):
        e = s.example(ex_id)
        return FileResponse(s.path(e), media_type="audio/wav")

    @app.delete("/api/teach/examples/{ex_id}")
    async def delete_example(ex_id: str):
        s.delete_example(ex_id)
        return {"teach": teacher.describe()}

    @app.post("/api/teach/train")
    async def train():
        return await run_in_threadpool(teacher.train)

    @app.get("/api/teach/download/run.zip")
    async def download_run():
        run_dir = teacher.latest_run()
        data = await run_in_threadpool(zip_folder, run_dir)
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{run_dir.name}.zip"'})

    @app.get("/api/teach/download/model.onnx")
    async def download_onnx():
        from ..serve.engine import export_in_child

        run_dir = teacher.latest_run()
        path = await run_in_threadpool(export_in_child, run_dir)
        return FileResponse(path, media_type="application/octet-stream", filename=f"{run_dir.name}.onnx")
