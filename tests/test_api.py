"""The public Python API, tested through the API (not the CLI): ``spec2img.convert`` / ``synth``,
``classify.fit`` / ``cv`` / ``lr_find`` / ``load`` / ``predict`` / ``export`` and :class:`classify.Run`,
the flag-named options and their defaults, and the one run-folder writer and reader."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import classify
import spec2img
import spec2img.api
from classify.config import AugmentConfig, TrainConfig
from classify.errors import ClassifyError, RunFolderError
from conftest import tone
from imageset import SMALL_CFG
from spec2img.errors import Spec2ImgError

HEAVY = ("torch", "fastai", "torchvision", "timm", "sklearn", "matplotlib", "pandas")
SMALL = dict(arch="resnet18", pretrained=False, bs=8, quiet=True)


# ------------------------------------------------------------------ imports
def test_the_api_names_load_nothing_heavy():
    code = ("import sys, classify, spec2img\n"
            "names = [classify.fit, classify.cv, classify.lr_find, classify.load, classify.predict, classify.export,\n"
            "         classify.Run, classify.TrainConfig, classify.CVConfig, spec2img.ConvertResult]\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_public_names_are_documented():
    for f in (classify.fit, classify.cv, classify.lr_find, classify.load, classify.predict, classify.export,
              classify.Run.predict, classify.Run.report, classify.Run.export_onnx, spec2img.api.convert,
              spec2img.api.synth):
        assert f.__doc__ and len(f.__doc__.strip()) > 40, f


# ------------------------------------------------------------------ options
def test_flag_named_options_build_the_configs_the_cli_builds():
    from classify.cli import _train_config, build_parser
    from classify.options import cv_config, train_config

    assert train_config("imgs") == TrainConfig(images="imgs")  # the dataclasses' defaults
    argv = ["fit", "imgs", "--lr", "auto", "--no-augment", "--fine-tune", "--crop-seconds", "full",
            "--head-c", "auto", "--freeze-epochs", "0", "--mask-frac", "0.3"]
    api = train_config("imgs", lr="auto", no_augment=True, fine_tune=True, crop_seconds="full", head_c="auto",
                       freeze_epochs=0, mask_frac=0.3)
    assert api == _train_config(build_parser().parse_args(argv))
    assert api.lr is None and api.head_only is False and api.crop_seconds is None and not api.augment.active
    aug = train_config("imgs", mask_frac=0.3, roll=False, mixup=0.0).augment
    assert aug == AugmentConfig(time_mask_frac=0.3, freq_mask_frac=0.3, roll=False, mixup=0.0)
    ms = train_config("imgs", mixstyle=0.4, stretch=0.2)
    assert ms.augment.mixstyle == 0.4 and ms.augment.stretch == 0.2
    assert ms == _train_config(build_parser().parse_args(["fit", "imgs", "--mixstyle", "0.4", "--stretch", "0.2"]))
    cv = cv_config("imgs", folds=3, epochs=4)
    assert cv.folds == 3 and cv.train.epochs == 4 and cv.holdout_pct == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda p: classify.fit(p, epoch=3), "unknown option 'epoch'; did you mean 'epochs'"),
    (lambda p: classify.cv(p, fold=3), "unknown option 'fold'; did you mean 'folds'"),
    (lambda p: classify.fit(p, epochs=0), "--epochs=0 must be at least 1"),
    (lambda p: classify.fit(p / "missing"), "no such folder"),
    (lambda p: classify.fit(p, arch="resnet35"), "--arch 'resnet35' is unknown"),
])
def test_bad_options_are_one_line_naming_them(tiny_images, call, message):
    with pytest.raises(ClassifyError, match=message):
        call(tiny_images)


# ------------------------------------------------------------------ fit, load, predict, report
@pytest.fixture(scope="module")
def head_run(tiny_images, tmp_path_factory):
    return classify.fit(tiny_images, out=tmp_path_factory.mktemp("api") / "run", head_only=True, **SMALL)


def test_fit_returns_a_run_with_typed_results(head_run, tiny_images):
    run = head_run
    assert isinstance(run, classify.Run) and not run.is_cv and run.folds == []
    assert run.classes == ["class0", "class1", "class2"]
    assert run.config.head_only is True and run.config.arch == "resnet18" and run.config.cut is not None
    assert run.metrics["n_valid_clips"] > 0 and 0 <= run.metrics["accuracy"] <= 1
    assert len(run.predictions) == run.metrics["n_valid_images"]
    assert list(run.history["phase"]) == ["head-only"]
    assert run.info.model.n_classes == 3
    assert (run.path / "report" / "index.html").is_file()  # fit builds the report
    again = classify.load(run.path)
    assert again == run and again.metrics == run.metrics


def test_predict_takes_files_and_arrays_alike(head_run, tmp_path):
    y = tone(800, sr=SMALL_CFG["sr"], duration=1.5, noise=0.01)
    wav = tmp_path / "clip.wav"
    sf.write(wav, y, SMALL_CFG["sr"], subtype="FLOAT")
    df = head_run.predict([wav, y], sr=SMALL_CFG["sr"], top_k=2)
    assert list(df["file"]) == [str(wav), "<array 1>"] and list(df["status"]) == ["ok", "ok"]
    assert set(df["label_1"]) <= set(head_run.classes)
    assert df["prob_1"][0] == pytest.approx(df["prob_1"][1], abs=1e-6) and df["label_1"][0] == df["label_1"][1]
    with pytest.raises(ClassifyError, match="sr="):
        head_run.predict(y)


def test_report_is_written_where_asked(head_run, tmp_path):
    index = head_run.report(out=tmp_path / "rep", worst=5, tsne=False, audio="none")
    assert index == tmp_path / "rep" / "index.html" and "<html" in index.read_text().lower()
    with pytest.raises(ClassifyError, match="did you mean 'max_per_cell'"):
        head_run.report(max_per_cel=3)


def test_load_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunFolderError, match="no such run folder"):
        classify.load(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="not a run folder"):
        classify.load(tmp_path)


@pytest.mark.slow
def test_export_onnx_predicts_as_torch_does(head_run, tmp_path):
    onnx = head_run.export_onnx(tmp_path / "m.onnx")
    assert onnx == tmp_path / "m.onnx" and onnx.is_file() and (tmp_path / "m.onnx.json").is_file()
    y = tone(1500, sr=SMALL_CFG["sr"], duration=2.0, noise=0.01)
    wav = tmp_path / "c.wav"
    sf.write(wav, y, SMALL_CFG["sr"], subtype="FLOAT")
    torch_p = classify.predict(head_run.path, [wav]).probs
    onnx_p = classify.predict(onnx, [wav]).probs
    np.testing.assert_allclose(onnx_p, torch_p, atol=1e-4)
    assert classify.export(head_run.path) == [head_run.path / "model.onnx"]


@pytest.mark.slow
def test_cv_and_lr_find_through_the_api(tiny_images, tmp_path):
    run = classify.cv(tiny_images, out=tmp_path / "cv", folds=2, head_only=True, **SMALL)
    assert run.is_cv and [f.path.name for f in run.folds] == ["fold_1", "fold_2"]
    assert run.metrics["headline"]["metric"] == "accuracy" and run.classes == ["class0", "class1", "class2"]
    assert run.predictions["fold"].nunique() == 2
    lr = classify.lr_find(tiny_images, out=tmp_path / "lr", lr_find_iters=5, **SMALL)
    assert lr > 0 and json.loads((tmp_path / "lr" / "lr_find.json").read_text())["suggestion"] == lr


# ------------------------------------------------------------------ one fit: the config resolved once
def test_a_distributed_fit_goes_through_the_mode_choice_and_says_so(tiny_images, caplog):
    from classify.commands import resolve_config
    from classify.data.imageset import load_image_set

    ds = load_image_set(tiny_images)
    from classify.models.archs import get_arch

    cfg = TrainConfig(images=str(tiny_images), arch="efficientnet_lite0")  # pretrained, 6 clips a class
    spec = get_arch("efficientnet_lite0")
    one = resolve_config(ds, cfg)
    assert one.head_only is True and one.cut == spec.probe_cut > 0 and one.input_height == spec.probe_height
    caplog.clear()
    with caplog.at_level(logging.INFO):
        ddp = resolve_config(ds, cfg, processes=2)
    assert ddp.head_only is False and ddp.cut == 0
    assert "--distributed 2 fine-tunes" in caplog.text and "--head-only" in caplog.text
    assert "fitting a logistic head" not in caplog.text  # no line announcing what does not happen
    assert resolve_config(ds, one) == one  # resolving twice changes nothing


# ------------------------------------------------------------------ the run folder's one writer
def test_run_folder_writer_and_readers_round_trip(tmp_path):
    import pandas as pd

    from classify.runfolder import (ModelInfo, prediction_table, read_embeddings, read_info, read_table,
                                    write_run)
    from spec2img.config import SpectrogramConfig

    spec = SpectrogramConfig(**SMALL_CFG)
    info = ModelInfo(arch="resnet18", n_classes=2, in_channels=1, input_height=None, dropout=0.5, hidden=8,
                     crop_width=20, multi_label=False)
    table = pd.DataFrame({"image": ["a/x.png", "b/y.png"], "source": ["x.wav", "y;z.wav"], "offset": [0.0, 1.0],
                          "labels": [["a"], ["b"]]})
    probs = np.array([[0.9, 0.1], [0.3, 0.7]])
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_run(tmp_path, classes=["a", "b"], spectrogram=spec, train=TrainConfig(images="imgs"), model_info=info,
              metrics={"accuracy": 1.0}, history=[{"epoch": 0, "train_loss": 0.5}],
              predictions=prediction_table(table, probs, np.array([0.1, 0.4]), ["a", "b"], threshold=None),
              embeddings=emb, versions_json=False)
    (tmp_path / "model.pt").write_bytes(b"")  # read_info needs the file present, not loadable
    got = read_info(tmp_path)
    assert got.classes == ["a", "b"] and got.model == info and got.metrics == {"accuracy": 1.0}
    pred = read_table(tmp_path / "valid_predictions.csv")
    assert list(pred["source"]) == ["x.wav", "y;z.wav"] and list(pred["pred"]) == ["a", "b"]
    np.testing.assert_allclose(pred[["p_a", "p_b"]].to_numpy(), probs)
    np.testing.assert_array_equal(read_embeddings(tmp_path), emb)
    assert read_table(tmp_path / "history.csv")["train_loss"].tolist() == [0.5]
    assert read_table(tmp_path / "absent.csv") is None


def test_writing_run_dir_locks_and_leaves_no_empty_folder(tmp_path):
    from classify.runfolder import writing_run_dir
    from spec2img.errors import LockError

    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with writing_run_dir(run):
            raise RuntimeError("boom")
    assert not run.exists()
    with writing_run_dir(run):
        with pytest.raises(LockError, match="in use by"):
            with writing_run_dir(run):
                pass
        (run / "x").write_text("kept")
    with writing_run_dir(run):  # released: a second writer may take it
        pass
    assert (run / "x").read_text() == "kept"


# ------------------------------------------------------------------ spec2img
def test_synth_then_convert_through_the_api(tmp_path):
    clips = spec2img.synth(tmp_path / "clips", n_per_class=2, sr=16000, classes=["tone", "chirp"])
    assert clips == tmp_path / "clips" and (clips / "synth.csv").is_file()
    res = spec2img.convert(clips, tmp_path / "images", labels=clips / "synth.csv", preset="logmel", sr=8000,
                           n_mels=32, duration=1.0)
    assert isinstance(res, spec2img.ConvertResult)
    assert (res.n_ok, res.n_failed, res.n_skipped) == (4, 0, 0) and res.manifest.is_file()
    assert res.config.sr == 8000 and res.config.n_mels == 32
    assert len(list((tmp_path / "images").rglob("*.png"))) == res.n_images == 4
    again = spec2img.convert(clips, tmp_path / "images", labels=clips / "synth.csv", config=res.config)
    assert again.n_ok == 4 and again.n_images == 4  # a rerun keeps what is up to date


def test_spec2img_api_names_are_also_the_modules(tmp_path):
    from spec2img import convert as conv
    from spec2img import synth as syn

    assert conv is spec2img.convert and callable(conv) and callable(conv.convert) and callable(syn.make_clip)
    with pytest.raises(Spec2ImgError, match="did you mean 'n_fft'"):
        spec2img.convert(tmp_path, tmp_path / "out", n_fftt=512)
    with pytest.raises(Spec2ImgError, match="kind='esc50' is unknown"):
        spec2img.synth(tmp_path, kind="esc50")
