"""End-to-end fit / cv / lr-find on tiny synthetic image folders (seconds each on CPU)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from classify.training import device as training_device
from classify.cli import main
from classify.config import TrainConfig
from classify.data.imageset import load_image_set
from classify.models.classifier import predict_windows
from classify.runfolder import load_model

TINY = ["--arch", "resnet18", "--no-pretrained", "--bs", "8", "-q"]
RUN_FILES = {"spectrogram.json", "train.json", "classes.json", "model.json", "model.pt", "metrics.json",
             "history.csv", "valid_predictions.csv", "valid_embeddings.npy", "versions.json"}


def clip_scores(run) -> tuple[np.ndarray, np.ndarray]:
    """``(probs, truth)`` per validation clip, recomputed from valid_predictions.csv (windows and
    images of a clip averaged, as fit scores them)."""
    from classify.scoring.evaluate import clip_average

    pred = pd.read_csv(run / "valid_predictions.csv", keep_default_na=False)
    classes = json.loads((run / "classes.json").read_text())
    probs = pred[[f"p_{c}" for c in classes]].to_numpy(float)
    truth = np.array([[c in str(labs).split(";") for c in classes] for labs in pred["labels"]], float)
    clip = pd.factorize(pred["source"])[0]
    return clip_average(probs, clip)[1], clip_average(truth, clip)[1] > 0.5


@pytest.fixture(scope="module")
def run(tiny_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["fit", str(tiny_images), "--out", str(out), "--epochs", "2", "--freeze-epochs", "1", "--export-learner", *TINY]) == 0
    return out


@pytest.mark.slow
def test_fit_writes_the_run_folder_contract(run, tiny_images):
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    assert not (run / "checkpoints").exists()
    assert (run / "learner.pkl").stat().st_size > 0
    metrics = json.loads((run / "metrics.json").read_text())
    from classify.scoring.metrics import single_label_summary

    probs, truth = clip_scores(run)  # the headline metrics are those of the saved predictions
    expected = single_label_summary(probs, truth.argmax(1))
    for key in ("accuracy", "top3_accuracy", "map3", "macro_f1"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-9), key
    assert metrics["n_valid_clips"] == len(probs)
    hist = pd.read_csv(run / "history.csv")
    assert list(hist["phase"]) == ["frozen", "unfrozen", "unfrozen"]
    assert {"train_loss", "valid_loss", "accuracy"} <= set(hist.columns)
    pred = pd.read_csv(run / "valid_predictions.csv")
    classes = json.loads((run / "classes.json").read_text())
    assert list(pred.columns[:6]) == ["image", "source", "offset", "labels", "pred", "loss"]
    assert list(pred.columns[6:]) == [f"p_{c}" for c in classes]
    emb = np.load(run / "valid_embeddings.npy")
    assert emb.dtype == np.float32 and emb.shape[0] == len(pred)
    versions = json.loads((run / "versions.json").read_text())
    assert {"torch", "fastai", "librosa"} <= set(versions)
    assert metrics["bf16"] is training_device.cpu_has_bf16()  # the default: autocast where the CPU has bfloat16
    # a fine-tuned run gets its unknown threshold from its validation clips' scores
    from classify.openset_file import read_openset
    from classify.scoring.openset import choose_threshold, max_scores

    found = read_openset(run)
    assert found is not None and "validation clips" in found.method and found.n_known == len(probs)
    assert found.threshold == pytest.approx(choose_threshold(max_scores(probs), n_classes=len(classes))[0], abs=1e-6)


@pytest.mark.parametrize("flag, native, device, expected", [
    (None, True, "cpu", True), (None, False, "cpu", False), (True, False, "cpu", True),
    (False, True, "cpu", False), (None, True, "cuda", False), (True, True, "cuda", False)])
def test_bf16_is_on_where_the_cpu_has_it_unless_told(monkeypatch, flag, native, device, expected):
    monkeypatch.setattr(training_device, "cpu_has_bf16", lambda: native)
    cfg = TrainConfig(images="x", bf16=flag)
    assert training_device.use_bf16(cfg, torch.device(device)) is expected


def test_bf16_and_no_augment_flags_parse():
    from classify.cli import _train_config, build_parser

    p = build_parser()
    assert _train_config(p.parse_args(["fit", "imgs"])).augment.active
    quiet = _train_config(p.parse_args(["fit", "imgs", "--no-augment", "--mixup", "0.2"])).augment
    assert not quiet.active and quiet.mixup == 0
    assert p.parse_args(["fit", "imgs"]).bf16 is None
    assert p.parse_args(["fit", "imgs", "--bf16"]).bf16 is True
    assert p.parse_args(["fit", "imgs", "--no-bf16"]).bf16 is False


@pytest.mark.slow
def test_run_folder_round_trips_without_the_image_folder(run, tiny_images, tmp_path):
    moved = tmp_path / "moved"
    run.rename(moved)  # portable: nothing points back at the images
    try:
        state = torch.load(moved / "model.pt", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        model, info = load_model(moved)
        pred = pd.read_csv(moved / "valid_predictions.csv")
        ds = load_image_set(tiny_images)
        index = {im: i for i, im in enumerate(ds.table["image"])}
        imgs = [ds.images[index[im]] for im in pred["image"]]
        probs, _ = predict_windows(model, imgs, width=info.model.crop_width)
        saved = pred[[f"p_{c}" for c in info.classes]].to_numpy()
        assert np.allclose(probs.numpy(), saved, atol=1e-4)
    finally:
        moved.rename(run)


@pytest.mark.slow
def test_seeded_cpu_runs_repeat_exactly(tiny_images, tmp_path):
    args = ["--epochs", "1", "--freeze-epochs", "1", "--seed", "3", *TINY]
    assert main(["fit", str(tiny_images), "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["fit", str(tiny_images), "--out", str(tmp_path / "b"), *args]) == 0
    ha, hb = (pd.read_csv(tmp_path / r / "history.csv") for r in "ab")
    pd.testing.assert_frame_equal(ha, hb)
    pa, pb = (pd.read_csv(tmp_path / r / "valid_predictions.csv") for r in "ab")
    pd.testing.assert_frame_equal(pa, pb)


@pytest.mark.slow
def test_multi_label_weak_labels_and_lr_auto(multi_images, tmp_path):
    out = tmp_path / "ml"
    rc = main(["fit", str(multi_images), "--out", str(out), "--epochs", "1", "--freeze-epochs", "0",
               "--lr", "auto", "--lr-find-iters", "12", "--unverified-weight", "0.5", *TINY])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    from classify.scoring.metrics import lwlrap

    probs, truth = clip_scores(out)
    assert metrics["multi_label"] and metrics["lwlrap"] == pytest.approx(lwlrap(truth, probs), abs=1e-5)
    assert 0 < metrics["threshold"] < 1
    lr = json.loads((out / "lr_find.json").read_text())
    assert lr["suggestion"] == pytest.approx(metrics["lr"]) and len(lr["lrs"]) == len(lr["losses"])
    assert (out / "lr_find.png").stat().st_size > 1000
    # validation on verified clips only
    pred = pd.read_csv(out / "valid_predictions.csv")
    man = pd.read_csv(multi_images / "manifest.csv")
    verified = dict(zip(man["source"], man["manually_verified"]))
    assert all(verified[s] == 1 for s in pred["source"])


@pytest.mark.slow
def test_cv_writes_folds_oof_and_ensemble(tiny_images, tmp_path):
    out = tmp_path / "cv"
    rc = main(["cv", str(tiny_images), "--out", str(out), "--folds", "2", "--holdout-pct", "0.34",
               "--epochs", "1", "--freeze-epochs", "0", *TINY])
    assert rc == 0
    res = json.loads((out / "cv_metrics.json").read_text())
    assert set(res["folds"]) == {"1", "2"}
    assert {"accuracy", "map3"} <= set(res["mean"]) and {"accuracy"} <= set(res["std"])
    ens = res["ensemble"]
    assert ens["n_test_clips"] > 0
    hits = ens["ensemble"]["accuracy"] * ens["n_test_clips"]  # a count of correctly ranked clips
    assert hits == pytest.approx(round(hits), abs=1e-9)
    folds = [json.loads((out / f"fold_{k}" / "metrics.json").read_text())["accuracy"] for k in (1, 2)]
    assert res["mean"]["accuracy"] == pytest.approx(np.mean(folds))
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert oof["source"].is_unique  # every cv clip predicted exactly once
    assert (out / "fold_1" / "model.pt").exists() and (out / "fold_2" / "model.pt").exists()


@pytest.mark.slow
def test_lr_find_command(tiny_images, tmp_path, capsys):
    assert main(["lr-find", str(tiny_images), "--out", str(tmp_path / "lr"), "--lr-find-iters", "12", *TINY]) == 0
    assert float(capsys.readouterr().out.strip()) > 0
    assert (tmp_path / "lr" / "lr_find.png").exists()


@pytest.mark.parametrize("changes, flag", [({"epochs": 0}, "--epochs=0"), ({"lr": -1.0}, "--lr=-1.0"),
                                           ({"unfrozen_lr": 0.0}, "--unfrozen-lr=0.0"), ({"dropout": 1.0}, "--dropout=1.0")])
def test_bad_training_settings_name_the_flag(changes, flag):
    from classify.errors import ClassifyError

    with pytest.raises(ClassifyError, match=flag):
        TrainConfig(images="x", **changes)


def test_bad_setting_through_the_cli_is_one_line_and_exit_2(tiny_images, tmp_path, capsys):
    rc = main(["fit", str(tiny_images), "--out", str(tmp_path / "r"), "--unfrozen-lr", "-1", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--unfrozen-lr=-1.0" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r" / "model.pt").exists()


def test_train_json_round_trips_through_the_one_config_reader(tmp_path):
    from spec2img.errors import ConfigError

    cfg = TrainConfig(images=str(tmp_path / "imgs"), epochs=3)
    path = cfg.save(tmp_path)
    saved = json.loads(path.read_text())
    assert saved["images_absolute"] == str((tmp_path / "imgs").absolute())  # extra keys kept on disk
    assert TrainConfig.load(tmp_path) == cfg and TrainConfig.load(path) == cfg
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"train\.json: not valid JSON.*re-run classify fit"):
        TrainConfig.load(tmp_path)
    with pytest.raises(ConfigError, match="no training config here"):
        TrainConfig.load(tmp_path / "elsewhere")
