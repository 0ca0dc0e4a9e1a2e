"""Teach mode's API end to end (in-process TestClient, the shipped AudioSet weights, CPU): three
classes taught from seeded synthetic WAVs, Train, a new clip of one class labelled right and a
sound of none of them ``unknown``; the saved run folder passes ``classify predict`` and ``classify
report``; names and ids cannot escape the session folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from classify.cli import main
from classify.serve import ServeConfig, create_app
from classify.teach import TeachConfig, make_teacher
from classify.teach.routes import add_teach_routes
from spec2img.synth import make_clip, wav_bytes

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SR = 16000
OCTET = {"Content-Type": "application/octet-stream"}
TAUGHT = ("tone", "click_train", "chirp")


def clip(kind: str, i: int, seconds: float = 2.0) -> bytes:
    """A seeded 2-s synthetic clip of ``kind`` (spec2img.synth's drawers, fixed length)."""
    rng = np.random.default_rng([7, list(("tone", "chirp", "noise_burst", "click_train", "hum", "bell")).index(kind), i])
    y, _ = make_clip(kind, rng, sr=SR)
    n = int(seconds * SR)
    y = np.resize(y, n) if len(y) < n else y[:n]
    return wav_bytes(y, sr=SR)


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    root = tmp_path_factory.mktemp("teach")
    teacher = make_teacher(root / "session", ServeConfig(window=2.0, hop=1.0, max_seconds=60), TeachConfig())
    app = create_app(teacher.engine)
    add_teach_routes(app, teacher)
    client = TestClient(app)
    for name in TAUGHT:
        assert client.post("/api/teach/classes", json={"name": name}).status_code == 200
        for i in range(8):
            r = client.post(f"/api/teach/examples?label={name}", content=clip(name, i), headers=OCTET)
            assert r.status_code == 200, r.text
    # "none of these": background recordings (noise bursts), not a class, inform the threshold
    assert client.post("/api/teach/classes", json={"name": "_background"}).status_code == 200
    for i in range(8):
        r = client.post("/api/teach/examples?label=_background", content=clip("noise_burst", i), headers=OCTET)
        assert r.status_code == 200, r.text
    r = client.post("/api/teach/train")
    assert r.status_code == 200, r.text
    return client, teacher, r.json(), root


def test_taught_model_labels_a_new_clip_and_calls_a_stranger_unknown(taught):
    client, teacher, trained, _ = taught
    assert sorted(trained["classes"]) == sorted(TAUGHT)
    assert 0 < trained["unknown_threshold"] < 1
    model = client.get("/api/model").json()
    assert sorted(model["classes"]) == sorted(TAUGHT) and model["unknown_threshold"] == trained["unknown_threshold"]
    for name in TAUGHT:  # a fourth-and-later recording, never taught
        out = client.post("/api/predict", content=clip(name, 100), headers=OCTET).json()
        assert out["label"] == name, out["probs"]
        assert out["unknown"] is False
    for i in (10, 11, 12):  # noise bursts never sent: none of the three classes
        stranger = client.post("/api/predict", content=clip("noise_burst", i), headers=OCTET).json()
        assert stranger["label"] == "unknown" and stranger["unknown"] is True
        assert stranger["score"] < trained["unknown_threshold"]


def test_run_folder_is_ordinary_and_holds_the_threshold(taught, tmp_path):
    _, teacher, trained, root = taught
    run = teacher.session.root / "runs" / trained["run"]
    oset = json.loads((run / "openset.json").read_text())
    assert oset["threshold"] == trained["unknown_threshold"] and "out-of-fold" in oset["method"]
    assert oset["n_background"] == 8 and not (teacher.session.root / "images" / "_background").exists()
    # the calibration read only training clips: none of the validation clips the run is scored on
    valid = {r["source"] for r in csv.DictReader(open(run / "valid_predictions.csv"))}
    assert oset["n_known"] == 24 - len(valid) and valid
    # labels.csv + audio/ are a spec2img input; classify predict and report work on the run
    rows = list(csv.DictReader(open(teacher.session.root / "labels.csv")))
    assert len(rows) == 24 and {r["label"] for r in rows} == set(TAUGHT)
    (tmp_path / "a.wav").write_bytes(clip("chirp", 200))
    (tmp_path / "b.wav").write_bytes(clip("noise_burst", 13))
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--out", str(out), "-q"]) == 0
    got = list(csv.DictReader(open(out)))
    assert [r["label"] for r in got] == ["chirp", "unknown"]
    assert main(["predict", str(run), str(tmp_path / "b.wav"), "--out", str(out), "-q",
                 "--unknown-threshold", "0"]) == 0
    assert list(csv.DictReader(open(out)))[0]["label"] != "unknown"
    assert main(["report", str(run), "-q"]) == 0
    page = (run / "report" / "index.html").read_text()
    assert "Unknown threshold (none of these)" in page and str(oset["threshold"])[:4] in page


def test_examples_can_be_heard_deleted_and_names_stay_inside(taught):
    client, teacher, _, _ = taught
    state = client.get("/api/teach").json()
    ex = state["classes"][0]["examples"][0]["id"]
    r = client.get(f"/api/teach/examples/{ex}")
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    for bad in ("../session.json", "..%2Fsession.json", "ex9999"):
        assert client.get(f"/api/teach/examples/{bad}").status_code == 404
    for name in ("_secret", "", "a\x00b", "x" * 100, "unknown"):
        r = client.post("/api/teach/classes", json={"name": name})
        assert r.status_code == 400, name
    r = client.post("/api/teach/classes", json={"name": "../../etc"})  # a legal name, never a path
    assert r.status_code == 200
    r = client.post("/api/teach/examples?label=../../etc", content=clip("bell", 0), headers=OCTET)
    assert r.status_code == 200
    e = r.json()["example"]
    assert (teacher.session.root / "audio" / f"{e['id']}.wav").is_file()
    assert client.delete(f"/api/teach/examples/{e['id']}").status_code == 200
    assert not (teacher.session.root / "audio" / f"{e['id']}.wav").exists()
    assert client.post("/api/teach/classes/delete", json={"name": "../../etc"}).status_code == 200
    long = clip("tone", 1, seconds=31)
    assert client.post("/api/teach/examples?label=tone", content=long, headers=OCTET).status_code == 413
    assert client.post("/api/teach/examples?label=nope", content=clip("tone", 1), headers=OCTET).status_code == 404


def test_an_edited_session_file_cannot_point_outside(tmp_path):
    from classify.errors import ClassifyError
    from classify.teach import Session

    root = tmp_path / "s"
    root.mkdir()
    (root / "session.json").write_text(json.dumps({"classes": ["a"], "examples": [
        {"id": "ex0001", "file": "../../etc/passwd", "label": "a", "seconds": 1.0}]}))
    with pytest.raises(ClassifyError, match="session.json"):
        Session(root)


def test_downloads_and_starting_again_from_the_run(taught, tmp_path):
    import io
    import zipfile

    client, teacher, trained, _ = taught
    r = client.get("/api/teach/download/run.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    run = trained["run"]
    assert {f"{run}/model.pt", f"{run}/openset.json", f"{run}/classes.json"} <= set(names)
    assert not any(n.endswith(".lock") for n in names)
    r = client.get("/api/teach/download/model.onnx")
    assert r.status_code == 200 and len(r.content) > 10000
    meta = json.loads((teacher.session.root / "runs" / run / "model.onnx.json").read_text())
    assert meta["unknown_threshold"] == trained["unknown_threshold"]
    # classify serve --teach NEW RUN_DIR: the run's classes and examples, ready to refine or extend
    again = make_teacher(tmp_path / "again", ServeConfig(), TeachConfig(),
                         start_from=teacher.session.root / "runs" / run)
    state = again.session.describe()
    assert sorted(c["name"] for c in state["classes"]) == sorted(TAUGHT)
    assert sum(len(c["examples"]) for c in state["classes"]) == 24


def test_train_reads_the_features_computed_as_examples_arrived(taught, monkeypatch):
    """Examples' features live in the project's feature cache (SESSION/images/.features) and Train
    computes none: with the network call made to fail, a second Train still succeeds."""
    from classify.training import featurecache

    client, teacher, _, _ = taught
    entries = list((teacher.session.root / "images" / ".features").rglob("*.npy"))
    assert len(entries) >= 24 + 8  # every example and background recording, one entry per image

    def no_network(*args, **kwargs):
        raise AssertionError("Train recomputed frozen features")

    monkeypatch.setattr(featurecache, "_compute", no_network)
    r = client.post("/api/teach/train")
    assert r.status_code == 200, r.text
    assert r.json()["run"] != teacher.session.runs[0]
