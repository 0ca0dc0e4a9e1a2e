"""classify predict / export on tiny synthetic runs: lengths, formats, outputs, ensembles, TTA,
ONNX parity, the torch-free ONNX path and every failure message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classify.cli import main
from classify.errors import ClassifyError, RunFolderError
from classify.prediction.ensemble import geometric_mean
from classify.prediction.predict import predict
from classify.prediction.windows import file_windows
from spec2img.config import SpectrogramConfig

from conftest import tone, write
from classify.testing import SMALL_SPEC, make_untrained_run

SR = 8000
CROP = 63  # columns = (63 - 1) * 128 / 8000 = 0.99 s


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    out = {"a": make_untrained_run(base / "a", seed=0), "b": make_untrained_run(base / "b", seed=1),
           "multi": make_untrained_run(base / "multi", seed=2, multi_label=True, threshold=0.3),
           "other": make_untrained_run(base / "other", classes=("cat", "dog", "low"), seed=3)}
    cv = base / "cv"
    for k, seed in enumerate((0, 1)):
        make_untrained_run(cv / f"fold_{k}", seed=seed)
    out["cv"] = cv
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Audio of several lengths, rates, channel counts and formats."""
    d = tmp_path_factory.mktemp("audio")
    stereo = np.stack([tone(700, sr=22050, duration=1.5), tone(1300, sr=22050, duration=1.5)], axis=1)
    return {
        "short": write(d / "short.wav", tone(300, sr=SR, duration=0.3, noise=0.01), SR, "PCM_16"),
        "flac": write(d / "two.flac", tone(700, sr=SR, duration=2.0, noise=0.01), SR, "PCM_24"),
        "ogg": write(d / "long.ogg", tone(1300, sr=SR, duration=6.0, noise=0.02), SR),
        "stereo": write(d / "stereo44k.wav", stereo, 22050, "FLOAT"),
    }


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "junk.wav").write_bytes(b"not audio at all")
    (d / "empty.wav").write_bytes(b"")
    write(d / "silent.wav", np.zeros(SR, np.float32), SR)
    return {"junk": d / "junk.wav", "empty": d / "empty.wav", "silent": d / "silent.wav",
            "missing": d / "missing.wav"}


@pytest.fixture(scope="module")
def base_result(runs, clips):
    return predict([runs["a"]], list(clips.values()), timeline=True)


# ----------------------------------------------------------------------------- windows
def test_windows_cover_any_length(clips):
    cfg = SpectrogramConfig(**SMALL_SPEC)
    short = file_windows(clips["short"], cfg, CROP)
    assert short.images.shape == (1, 1, 32, CROP) and short.end[0] == pytest.approx(0.3)
    long = file_windows(clips["ogg"], cfg, CROP)
    assert len(long.start) > 10 and long.start[0] == 0 and long.end[-1] == pytest.approx(6.0, abs=0.02)
    assert np.all(np.diff(long.start) > 0)
    chunked = file_windows(clips["ogg"], cfg, CROP, chunk_seconds=3.0)  # streamed in tiles
    assert chunked.start[0] == 0 and chunked.end[-1] == pytest.approx(6.0, abs=0.02)
    assert np.all(np.diff(chunked.start) > 0) and np.diff(chunked.start).max() <= 0.5 + 1e-6
    tta = file_windows(clips["flac"], cfg, CROP, tta=2)
    assert len(tta.images) == 3 * len(tta.start)


# ----------------------------------------------------------------------------- outputs
def test_predict_lengths_and_formats(base_result, clips):
    t = base_result.table
    assert list(t["file"]) == [str(p) for p in clips.values()]
    assert (t["status"] == "ok").all()
    assert list(t.columns[:7]) == ["file", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3"]
    np.testing.assert_allclose(base_result.probs.sum(1), 1, atol=1e-5)
    assert (t["prob_1"] >= t["prob_2"]).all() and set(t["label_1"]) <= {"high", "low", "mid"}


def test_timeline(base_result, clips, tmp_path):
    tl = base_result.timeline
    assert list(tl.columns) == ["file", "start", "end", "label", "prob", "p_high", "p_low", "p_mid"]
    long = tl[tl["file"] == str(clips["ogg"])]
    assert len(long) > 10 and long["start"].is_monotonic_increasing and long["end"].max() <= 6.0
    # mean aggregation: the file's probabilities are the mean of its windows'
    row = base_result.probs[list(clips).index("ogg")]
    np.testing.assert_allclose(long[["p_high", "p_low", "p_mid"]].mean().to_numpy(), row, atol=1e-5)


def test_aggregate_max_and_tta(runs, clips):
    files = [clips["ogg"]]
    mean = predict([runs["a"]], files).probs
    mx = predict([runs["a"]], files, aggregate="max").probs
    assert (mx >= mean - 1e-6).all() and not np.allclose(mx, mean)
    tta = predict([runs["a"]], files, tta=2).probs
    assert np.isfinite(tta).all() and not np.allclose(tta, mean)


def test_cli_outputs_and_kaggle(runs, clips, bad, tmp_path, capsys):
    files = [clips["flac"], bad["junk"], clips["short"]]
    out, sub, tl = tmp_path / "p.csv", tmp_path / "sub.csv", tmp_path / "t.csv"
    rc = main(["predict", str(runs["a"]), *map(str, files), "--out", str(out), "--kaggle", str(sub),
               "--timeline", str(tl), "--top-k", "2"])
    assert rc == 1  # one file failed
    assert "2 file(s) predicted, 1 failed" in capsys.readouterr().out
    p = pd.read_csv(out, keep_default_na=False)
    assert list(p.columns) == ["file", "label_1", "prob_1", "label_2", "prob_2", "status", "error"]
    assert list(p["status"]) == ["ok", "failed", "ok"]
    k = pd.read_csv(sub, keep_default_na=False)
    assert list(k.columns) == ["fname", "label"]
    assert list(k["fname"]) == ["two.flac", "junk.wav", "short.wav"]  # every input, input order
    assert [len(s.split(" ")) for s in k["label"]] == [3, 1, 3] and k["label"][1] == ""
    assert set(pd.read_csv(tl)["file"]) == {str(clips["flac"]), str(clips["short"])}


def test_multi_label(runs, clips, tmp_path):
    r = predict([runs["multi"]], [clips["flac"], clips["short"]])
    assert r.threshold == 0.3
    for _, row in r.table.iterrows():
        probs = {c: row[f"p_{c}"] for c in ("high", "low", "mid")}
        assert row["labels"].split(";") == [c for c, v in probs.items() if v >= 0.3] or (
            row["labels"] == "" and max(probs.values()) < 0.3)
    from classify.prediction.results import kaggle_table

    assert list(kaggle_table(r).columns) == ["fname", "high", "low", "mid"]


# ----------------------------------------------------------------------------- ensembles
@pytest.mark.slow
def test_ensemble_geometric_mean_and_cv(runs, clips):
    files = [clips["flac"], clips["short"]]
    pa, pb = (predict([runs[n]], files).probs for n in ("a", "b"))
    both = predict([runs["a"], runs["b"]], files)
    g = np.sqrt(pa * pb)
    np.testing.assert_allclose(both.probs, g / g.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(both.probs, geometric_mean([pa, pb], multi_label=False), atol=1e-6)
    cv = predict([runs["cv"]], files)  # fold_0 = seed 0, fold_1 = seed 1
    assert cv.n_models == 2
    np.testing.assert_allclose(cv.probs, both.probs, atol=1e-5)


@pytest.mark.slow
def test_cli_ensemble_positional_or_run(runs, clips, tmp_path):
    a, b = tmp_path / "pos.csv", tmp_path / "flag.csv"
    audio = str(clips["flac"])
    assert main(["predict", str(runs["a"]), str(runs["b"]), audio, "--out", str(a)]) == 0
    assert main(["predict", str(runs["a"]), audio, "--run", str(runs["b"]), "--out", str(b)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))
    expected = predict([runs["a"], runs["b"]], [clips["flac"]]).probs[0].max()
    assert pd.read_csv(a)["prob_1"][0] == pytest.approx(expected, abs=1e-5)


def test_ensemble_needs_same_classes(runs, clips):
    with pytest.raises(ClassifyError, match="cannot be ensembled: classes differ"):
        predict([runs["a"], runs["other"]], [clips["short"]])
    with pytest.raises(ClassifyError, match="one is multi-label"):
        predict([runs["a"], runs["multi"]], [clips["short"]])


# ----------------------------------------------------------------------------- ONNX
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_onnx_parity(arch, runs, clips, tmp_path):
    from classify.prediction.export import export_onnx

    run = runs["a"] if arch == "resnet18" else make_untrained_run(tmp_path / arch, arch=arch)
    out = export_onnx(run, tmp_path / f"{arch}.onnx")
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["classes"] == ["high", "low", "mid"] and meta["crop_width"] == CROP
    assert SpectrogramConfig.from_dict(meta["spectrogram"]) == SpectrogramConfig(**SMALL_SPEC)
    files = list(clips.values())
    pt = predict([run], files, tta=1, timeline=True)
    ox = predict([out], files, tta=1, timeline=True, backend="onnx")
    assert np.abs(pt.probs - ox.probs).max() < 1e-4
    cols = ["p_high", "p_low", "p_mid"]
    assert np.abs(pt.timeline[cols].to_numpy() - ox.timeline[cols].to_numpy()).max() < 1e-4
    if arch == "resnet18":  # batch and width are dynamic axes
        from classify.prediction.onnx_predict import onnx_scorer
        from classify.prediction.ensemble import torch_scorer

        x = np.random.default_rng(0).integers(0, 256, (3, 1, 32, 40), dtype=np.uint8)
        assert np.abs(onnx_scorer(out).score(x) - torch_scorer(run).score(x)).max() < 1e-4


@pytest.mark.slow
def test_onnx_path_needs_neither_torch_nor_fastai(runs, clips, tmp_path):
    from classify.prediction.export import export_onnx

    model = export_onnx(runs["a"], tmp_path / "m.onnx")
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('torch', 'fastai', 'torchvision', 'timm'):\n"
        "        raise ImportError('blocked: ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from classify.prediction.predict import predict_onnx\n"
        f"r = predict_onnx([{str(model)!r}], [{str(clips['flac'])!r}, {str(clips['ogg'])!r}])\n"
        "assert (r.table['status'] == 'ok').all(), r.table\n"
        "assert not any(m.split('.')[0] in ('torch', 'fastai') for m in sys.modules)\n"
        "print('ok', r.probs.shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok (2, 3)" in proc.stdout


@pytest.mark.slow
def test_cli_export_and_predict_onnx(runs, clips, tmp_path, capsys):
    cv = tmp_path / "cv"
    import shutil

    shutil.copytree(runs["cv"], cv)
    assert main(["export", str(cv), "--onnx"]) == 0
    assert main(["predict", str(cv), str(clips["short"]), "--onnx", "--out", str(tmp_path / "cv.csv")]) == 0

    run = tmp_path / "run"
    make_untrained_run(run)
    assert main(["export", str(run), "--onnx"]) == 0
    assert (run / "model.onnx").is_file() and (run / "model.onnx.json").is_file()
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(clips["short"]), "--onnx", "--out", str(out)]) == 0
    assert pd.read_csv(out)["status"].tolist() == ["ok"]


# ----------------------------------------------------------------------------- failures
def test_bad_audio_rows_match_spec2img(runs, clips, bad):
    files = [bad["junk"], clips["short"], bad["empty"], bad["silent"], bad["missing"], bad["junk"].parent]
    r = predict([runs["a"]], files)
    t = r.table.set_index(r.table["file"].map(lambda f: Path(f).name))
    assert t.loc["short.wav", "status"] == "ok"
    assert "not audio that libsndfile can decode" in t.loc["junk.wav", "error"].iloc[0]
    assert "empty file (0 bytes)" in t.loc["empty.wav", "error"].iloc[0]
    assert "is silent" in t.loc["silent.wav", "error"].iloc[0]
    assert t.loc["missing.wav", "error"].endswith("missing.wav: no such file")
    assert len(r.failures) == len(r.table) - 1 and np.isnan(r.probs[0]).all()


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_run_folder_failures(runs, clips, tmp_path, capsys):
    audio = str(clips["short"])
    assert "no such run folder" in _one_line_error(capsys, ["predict", str(tmp_path / "nope"), audio])
    r = _copy_run(runs["a"], tmp_path / "incomplete")
    (r / "model.pt").unlink()
    assert "missing model.pt" in _one_line_error(capsys, ["predict", str(r), audio])
    r = _copy_run(runs["a"], tmp_path / "truncated")
    data = (r / "model.pt").read_bytes()
    (r / "model.pt").write_bytes(data[: len(data) // 2])
    assert "model.pt" in _one_line_error(capsys, ["predict", str(r), audio])
    r = _copy_run(runs["a"], tmp_path / "garbage")
    (r / "model.pt").write_bytes(b"\x80\x04garbage" * 10)
    assert "model.pt" in _one_line_error(capsys, ["predict", str(r), audio])
    r = _copy_run(runs["a"], tmp_path / "mismatch")  # weights of another architecture
    info = json.loads((r / "model.json").read_text())
    (r / "model.json").write_text(json.dumps({**info, "arch": "resnet34"}))
    assert "does not fit its model.json" in _one_line_error(capsys, ["predict", str(r), audio])
    r = _copy_run(runs["a"], tmp_path / "future")  # written by an incompatible version
    (r / "model.json").write_text(json.dumps({**info, "new_field": 1}))
    assert "unreadable run files" in _one_line_error(capsys, ["predict", str(r), audio])
    r = _copy_run(runs["a"], tmp_path / "spec")
    (r / "spectrogram.json").write_text(json.dumps({**SMALL_SPEC, "future_knob": 3}))
    assert "unknown spectrogram setting" in _one_line_error(capsys, ["predict", str(r), audio])


def test_onnx_failures(runs, clips, tmp_path, capsys):
    audio = str(clips["short"])
    err = _one_line_error(capsys, ["predict", str(runs["b"]), audio, "--onnx"])
    assert "model.onnx: no such ONNX model; run classify export RUN_DIR --onnx" in err
    from classify.prediction.export import export_onnx

    model = export_onnx(runs["b"], tmp_path / "m.onnx")
    model.write_bytes(model.read_bytes()[:1000])
    assert "not a loadable ONNX model" in _one_line_error(capsys, ["predict", str(model), audio])
    meta = model.with_name("m.onnx.json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format_version": 99}))
    assert "version 99" in _one_line_error(capsys, ["predict", str(model), audio])
    meta.unlink()
    assert "m.onnx.json: missing" in _one_line_error(capsys, ["predict", str(model), audio])


def test_user_errors(runs, clips, tmp_path, capsys):
    audio = str(clips["short"])
    assert "--top-k=0" in _one_line_error(capsys, ["predict", str(runs["a"]), audio, "--top-k", "0"])
    assert "--tta=-1" in _one_line_error(capsys, ["predict", str(runs["a"]), audio, "--tta", "-1"])
    assert "--bs=0" in _one_line_error(capsys, ["predict", str(runs["a"]), audio, "--bs", "0"])
    with pytest.raises(ClassifyError, match="add --onnx"):
        predict([tmp_path / "x.onnx"], [audio])
    with pytest.raises(ClassifyError, match="--timeline needs runs with the same"):
        predict([runs["a"], make_untrained_run(tmp_path / "wide", crop_width=40)], [audio], timeline=True)
    with pytest.raises(RunFolderError):
        predict([tmp_path / "nothing"], [audio])
