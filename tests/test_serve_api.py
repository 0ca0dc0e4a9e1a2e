"""classify serve's JSON API in-process (FastAPI TestClient): every endpoint, every bad input, caps,
concurrency, ensembles, and the promise that serving an .onnx never imports torch or fastai."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from classify.cli import main
from classify.prediction.predict import predict
from classify.serve import Engine, ServeConfig, create_app
from classify.serve.app import STATIC, is_loopback
from conftest import ROOT, tone, write
from serve_helpers import linear_onnx

OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Seeded linear ONNX models in the export's format (no torch; the real export: the slow test)."""
    root = tmp_path_factory.mktemp("serve_models")
    return {"a": linear_onnx(root / "a", seed=0), "b": linear_onnx(root / "b", seed=1),
            "multi": linear_onnx(root / "multi", seed=2, multi_label=True, threshold=0.5)}


@pytest.fixture(scope="module")
def client(models):
    engine = Engine.load([models["a"]], ServeConfig(max_mb=1.0, max_seconds=20.0, top_k=3))
    with TestClient(create_app(engine)) as c:
        yield c
    engine.close()


def _wav_bytes(y: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _clip(seconds: float = 2.5, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = tone(700, sr=sr, duration=seconds, noise=0.05, seed=seed)
    y[: y.size // 3] += tone(2500, sr=sr, duration=seconds, amp=0.4)[: y.size // 3]
    return (y * rng.uniform(0.5, 0.9)).astype(np.float32)


def _post(client, data: bytes, **params):
    return client.post("/api/predict", content=data, headers=OCTET, params=params)


def _assert_serving(client):
    r = _post(client, _wav_bytes(_clip(1.0), 16000), timeline="false", spectrogram="false")
    assert r.status_code == 200, r.text
    assert set(r.json()["probs"]) == set(client.get("/api/model").json()["classes"])


# ------------------------------------------------------------------------------ endpoints
def test_model_endpoint_describes_classes_settings_window_and_limits(client, models):
    m = client.get("/api/model").json()
    meta = json.loads(Path(str(models["a"]) + ".json").read_text())
    assert m["classes"] == meta["classes"] and m["multi_label"] is False and m["threshold"] is None
    assert m["spectrogram"] == meta["spectrogram"] and m["crop_width"] == meta["crop_width"]
    sp = meta["spectrogram"]
    assert m["model_window_seconds"] == pytest.approx((meta["crop_width"] - 1) * sp["hop_length"] / sp["sr"], abs=1e-4)
    assert m["live"] == {"window": 4.0, "hop": 1.0}
    assert m["limits"] == {"max_bytes": 2**20, "max_seconds": 20.0}
    assert client.get("/api/health").json()["ok"] is True


def test_page_and_static_files_are_local_and_safe(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(u.startswith("/static/") or u.startswith("data:") for u in refs), refs
    for name in ("app.js", "style.css", "capture-worklet.js"):
        s = client.get(f"/static/{name}")
        assert s.status_code == 200 and len(s.text) > 100, name
    for f in STATIC.iterdir():  # nothing fetched from another host
        assert not re.search(r"https?://", f.read_text()), f
    assert client.get("/static/../engine.py").status_code == 404
    assert client.get("/static/%2e%2e/engine.py").status_code == 404


def test_predict_equals_classify_predict_timeline(client, models, tmp_path):
    y = _clip(3.3, sr=22050, seed=3)
    path = write(tmp_path / "clip.flac", y, 22050)
    r = _post(client, path.read_bytes())
    assert r.status_code == 200, r.text
    got = r.json()
    want = predict([models["a"]], [path], backend="onnx", timeline=True)
    probs = want.probs[0]
    assert np.allclose([got["probs"][c] for c in want.classes], probs, atol=1e-6)
    assert [x["label"] for x in got["labels"]] == [want.classes[j] for j in np.argsort(-probs, kind="stable")[:3]]
    tl = want.timeline
    assert got["windows"] == len(tl) == len(got["timeline"]) > 3
    assert [w["start"] for w in got["timeline"]] == pytest.approx(tl["start"].tolist(), abs=1e-9)
    assert [w["end"] for w in got["timeline"]] == pytest.approx(tl["end"].tolist(), abs=1e-9)
    assert [w["label"] for w in got["timeline"]] == tl["label"].tolist()
    cols = [f"p_{c}" for c in want.classes]
    assert np.allclose([w["probs"] for w in got["timeline"]], tl[cols].to_numpy(), atol=1e-6)
    assert got["duration"] == pytest.approx(3.3, abs=1e-3)


def test_spectrogram_is_the_pixels_the_model_saw(client, tmp_path):
    from classify.prediction.windows import file_windows
    from spec2img.config import SpectrogramConfig
    from spec2img.io import read_png

    path = write(tmp_path / "c.wav", _clip(2.0, sr=8000, seed=4), 8000, "PCM_16")
    spec = _post(client, path.read_bytes(), timeline="false").json()["spectrogram"]
    png = tmp_path / "s.png"
    png.write_bytes(base64.b64decode(spec["png"]))
    img = read_png(png)
    m = client.get("/api/model").json()
    w = file_windows(path, SpectrogramConfig.from_dict(m["spectrogram"]), m["crop_width"])
    assert img.shape == (spec["height"], spec["width"]) and spec["height"] == w.images.shape[2]
    assert np.array_equal(img[:, : m["crop_width"]], w.images[0, 0])  # first window, pixel for pixel
    last = w.images[-1, 0]
    assert np.array_equal(img[:, -last.shape[-1]:], last)
    assert spec["seconds_per_column"] == pytest.approx(m["seconds_per_column"])


def test_formats_and_channels(client, tmp_path):
    y = _clip(1.5, sr=44100, seed=5)
    stereo = np.stack([y, 0.5 * y], 1)
    for data in (_wav_bytes(stereo, 44100), _wav_bytes(y, 44100, "FLAC"), _wav_bytes(y, 44100, "OGG", "VORBIS"),
                 _wav_bytes(y, 44100, "WAV", "FLOAT")):
        r = _post(client, data, spectrogram="false")
        assert r.status_code == 200, r.text
        assert sum(r.json()["probs"].values()) == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------ bad input
def test_bad_uploads_get_error_json_and_the_server_keeps_serving(client):
    good = _wav_bytes(_clip(2.0), 16000)
    flac = _wav_bytes(_clip(2.0), 16000, "FLAC")
    cases = {
        "empty": (b"", 400, "empty"),
        "text": (b"hello, this is not audio at all" * 10, 422, "not audio"),
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(200), 422, "not audio"),
        "riff junk": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100), 422, "the upload"),
        "wav cut in its header": (good[:30], 422, "the upload"),
        "wav cut in its samples": (good[: len(good) // 2], 422, "truncated"),
        "flac cut in its samples": (flac[: len(flac) // 2], 422, "upload"),
        "silent": (_wav_bytes(np.zeros(16000, np.float32), 16000), 422, "silent"),
    }
    for name, (data, status, words) in cases.items():
        r = _post(client, data)
        assert r.status_code == status, (name, r.text)
        body = r.json()
        assert body["status"] == status and words in body["error"], (name, body)
        assert "/tmp" not in body["error"] and "classify-serve" not in body["error"], body  # no server paths
        _assert_serving(client)


def test_size_and_duration_caps(client):
    big = _wav_bytes(np.tile(_clip(10.0), 4), 16000)  # 40 s of 16-bit at 16 kHz = 1.28 MB > 1 MB
    r = _post(client, big)
    assert r.status_code == 413 and "larger than 1 MB" in r.json()["error"] and "--max-mb" in r.json()["error"]
    long = _wav_bytes(np.tile(_clip(5.0, sr=4000), 5), 4000, subtype="PCM_U8")  # 25 s, 100 kB
    r = _post(client, long)
    assert r.status_code == 413 and "25.0 s long" in r.json()["error"] and "20 s" in r.json()["error"]
    _assert_serving(client)


def test_size_cap_is_checked_while_reading(client):
    def chunks():  # no Content-Length: the server must count as it reads
        for _ in range(40):
            yield bytes(64 * 1024)

    r = client.post("/api/predict", content=chunks(), headers=OCTET)
    assert r.status_code == 413 and "larger than 1 MB" in r.json()["error"]
    r = client.post("/api/predict", content=b"x", headers={**OCTET, "Content-Length": str(5 * 2**20)})
    assert r.status_code in (400, 413)
    _assert_serving(client)


def test_bad_requests(client):
    files = {"file": ("c.wav", _wav_bytes(_clip(1.0), 16000), "audio/wav")}
    r = client.post("/api/predict", files=files)
    assert r.status_code == 415 and "--data-binary" in r.json()["error"]
    r = _post(client, _wav_bytes(_clip(1.0), 16000), top_k=0)
    assert r.status_code == 400 and "top_k" in r.json()["error"]
    assert client.get("/api/predict").status_code == 405
    assert client.get("/api/nothing").status_code == 404
    _assert_serving(client)


def test_host_header_checked_on_loopback(models):
    engine = Engine.load([models["a"]])
    with TestClient(create_app(engine, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"Host": "attacker.example"}).status_code == 400
    engine.close()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


# ------------------------------------------------------------------------------ models
def test_concurrent_requests_get_their_own_answers(client):
    clips = [_wav_bytes(_clip(1.0 + 0.25 * i, seed=10 + i), 16000) for i in range(8)]
    alone = [_post(client, c, spectrogram="false").json() for c in clips]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda c: _post(client, c, spectrogram="false").json(), clips * 2))
    for i, r in enumerate(together):
        assert r["timeline"] == alone[i % 8]["timeline"] and r["probs"] == alone[i % 8]["probs"]


def test_ensemble_and_cv_folder_equal_classify_predict(models, tmp_path):
    cv = tmp_path / "cv"
    for k, name in enumerate(("a", "b")):
        shutil.copytree(models[name].parent, cv / f"fold_{k}")
    y = _clip(2.2, sr=16000, seed=7)
    path = write(tmp_path / "e.wav", y, 16000, "PCM_16")
    want = predict([cv], [path], backend="onnx", timeline=True)
    assert want.n_models == 2
    for paths in ([cv], [models["a"], models["b"]]):
        engine = Engine.load(paths)
        assert len(engine.scorers) == 2
        with TestClient(create_app(engine)) as c:
            got = _post(c, path.read_bytes()).json()
        engine.close()
        assert np.allclose([got["probs"][k] for k in want.classes], want.probs[0], atol=1e-6)
        cols = [f"p_{k}" for k in want.classes]
        assert np.allclose([w["probs"] for w in got["timeline"]], want.timeline[cols].to_numpy(), atol=1e-6)
    single = predict([models["a"]], [path], backend="onnx")
    assert not np.allclose(single.probs, want.probs, atol=1e-4)  # the ensemble is not one of its members


def test_multi_label_lists_every_label_above_threshold(models, tmp_path):
    engine = Engine.load([models["multi"]])
    path = write(tmp_path / "m.wav", _clip(2.0, seed=8), 16000, "PCM_16")
    with TestClient(create_app(engine)) as c:
        m = c.get("/api/model").json()
        got = _post(c, path.read_bytes()).json()
    engine.close()
    assert m["multi_label"] is True and m["threshold"] == 0.5
    want = predict([models["multi"]], [path], backend="onnx", timeline=True)
    labels = want.table["labels"].iloc[0].split(";") if want.table["labels"].iloc[0] else []
    assert got["above_threshold"] == labels
    assert got["above_threshold"] == [k for k, v in got["probs"].items() if v >= 0.5]
    for w in got["timeline"]:
        assert w["above_threshold"] == [k for k, v in zip(m["classes"], w["probs"]) if v >= 0.5]


def test_engine_rejects_incompatible_or_missing_models(models, tmp_path):
    from classify.errors import ClassifyError

    with pytest.raises(ClassifyError, match="no such ONNX model"):
        Engine.load([tmp_path / "nope.onnx"])
    with pytest.raises(ClassifyError, match="not a run folder"):
        Engine.load([tmp_path])
    with pytest.raises(ClassifyError, match="multi-label"):
        Engine.load([models["a"], models["multi"]])
    with pytest.raises(ClassifyError, match="--hop"):
        ServeConfig(window=2, hop=3)


# ------------------------------------------------------------------------------ CLI and imports
def test_cli_serve_errors_are_one_line(models, tmp_path, capsys, caplog):
    assert main(["serve", str(tmp_path / "missing.onnx"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "missing.onnx" in err and "Traceback" not in err
    assert "reachable from other machines" in err + caplog.text  # the warning for a non-loopback --host
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert main(["serve", str(models["a"]), "--port", str(s.getsockname()[1])]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert main(["serve", str(models["a"]), "--window", "0"]) == 2


_NO_TORCH = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from classify.serve import Engine, create_app
clip, names = Path(sys.argv[1]).read_bytes(), []
for target in sys.argv[2:]:
    engine = Engine.load([Path(target)])
    with TestClient(create_app(engine)) as c:
        r = c.post("/api/predict", content=clip)
        assert r.status_code == 200, r.text
        assert c.get("/").status_code == 200
    engine.close()
    names.append(engine.scorers[0].name)
print(json.dumps({"heavy": sorted(m for m in ("torch", "fastai", "torchvision", "timm") if m in sys.modules),
                  "onnx": names}))
"""


def _serve_in_child(clip: Path, *models: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _NO_TORCH, str(clip), *map(str, models)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_serving_an_onnx_never_imports_torch_or_fastai(models, tmp_path):
    clip = write(tmp_path / "n.wav", _clip(1.0), 16000, "PCM_16")
    got = _serve_in_child(clip, models["a"], models["a"].parent)  # the .onnx, and the folder holding it
    assert got["heavy"] == [] and len(got["onnx"]) == 2
    assert all(n.endswith("model.onnx") for n in got["onnx"])


@pytest.mark.slow
def test_run_folder_without_onnx_is_exported_in_a_child_process(tmp_path):
    from classify.testing import make_untrained_run

    run = make_untrained_run(tmp_path / "run", seed=3)
    assert not (run / "model.onnx").exists()
    clip = write(tmp_path / "n.wav", _clip(1.0), 16000, "PCM_16")
    got = _serve_in_child(clip, run)
    assert got["heavy"] == []  # torch ran in the exporting child only
    assert (run / "model.onnx").is_file() and (run / "model.onnx.json").is_file()
    r = predict([run], [clip])  # torch model.pt == the served export
    engine = Engine.load([run])
    with TestClient(create_app(engine)) as c:
        p = _post(c, clip.read_bytes()).json()["probs"]
    engine.close()
    assert np.allclose([p[k] for k in r.classes], r.probs[0], atol=1e-4)
