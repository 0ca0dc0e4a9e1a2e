"""The average of the probe and the fine-tune kept as one network (classify.models.blend.Blend):
its probabilities are the members' mean for every consumer, a blended run folder round-trips, and
mode.fit keeps one when the average scores best on the inner split (predict, export, report, cv)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from classify.config import TrainConfig
from classify.errors import RunFolderError
from classify.models.blend import Blend, mean_probability_logits
from classify.models.classifier import AudioClassifier, predict_windows
from classify.runfolder import ModelInfo, RunInfo, fold_dirs, load_model, read_info, rebuild, write_run
from classify.testing import SMALL_SPEC, make_untrained_run
from spec2img.config import SpectrogramConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = SpectrogramConfig(**SMALL_SPEC)


def _probs(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multi_label else logits.softmax(1)


def _probe_info(multi_label: bool) -> ModelInfo:
    """A probe member as mode.fit writes it: linear head on a cut, GeM-pooled frozen body."""
    return ModelInfo(arch="resnet18", n_classes=3, in_channels=1, input_height=None, dropout=0.5, hidden=64,
                     crop_width=63, multi_label=multi_label, head="linear", cut=1, pool="gem",
                     spectrogram_digest=SPEC.digest())


@pytest.mark.parametrize("multi_label", [False, True])
def test_blend_probabilities_are_the_mean_of_its_members(multi_label, tmp_path):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g) * 4, torch.randn(5, 4, generator=g) * 4
    a[0], b[1] = 30.0, -30.0  # the probe's capped logits (headonly.LOGIT_CAP) stay finite and exact
    z = mean_probability_logits([a, b], multi_label=multi_label)
    assert torch.isfinite(z).all()
    assert torch.allclose(_probs(z, multi_label), (_probs(a, multi_label) + _probs(b, multi_label)) / 2, atol=1e-6)

    run = make_untrained_run(tmp_path / "run", multi_label=multi_label, model_info={"probe": _probe_info(multi_label)})
    model, _ = load_model(run)
    assert isinstance(model, Blend)
    x = torch.rand(4, 1, SPEC.n_mels, 63, generator=g)
    with torch.no_grad():
        members = (_probs(model.fine_tune(x), multi_label) + _probs(model.probe(x), multi_label)) / 2
        assert torch.allclose(_probs(model(x), multi_label), members, atol=1e-6)
    # through the windows every scorer cuts (cv folds, validation scoring): the mean of the members' again
    images = [torch.randint(0, 256, (1, SPEC.n_mels, w), dtype=torch.uint8, generator=g) for w in (40, 63, 150)]
    P, E = predict_windows(model, images, width=63, multi_label=multi_label)
    P1, E1 = predict_windows(model.fine_tune, images, width=63, multi_label=multi_label)
    P2, E2 = predict_windows(model.probe, images, width=63, multi_label=multi_label)
    assert torch.allclose(P, (P1 + P2) / 2, atol=1e-6)
    assert torch.allclose(E, torch.cat([E1, E2], 1), atol=1e-6)  # the members' embeddings side by side


def test_blended_run_round_trips_and_old_model_json_still_loads(tmp_path):
    train_cfg = TrainConfig(images="none", arch="resnet18", pretrained=False)
    top = dataclasses.replace(_probe_info(False), head="pool", cut=0, pool="mean", probe=_probe_info(False))
    info = RunInfo(tmp_path, ["high", "low", "mid"], SPEC, train_cfg, top, {})
    torch.manual_seed(0)
    model = rebuild(info).eval()
    with torch.no_grad():  # trained-looking weights: a zero state would hide a mixed-up member
        for p in model.parameters():
            p.normal_(0, 0.1)
    run = write_run(tmp_path / "blend", classes=info.classes, spectrogram=SPEC, train=train_cfg, model_info=top,
                    metrics={}, model=model, versions_json=False)
    written = json.loads((run / "model.json").read_text())
    assert written["head"] == "pool" and written["probe"]["head"] == "linear" and "probe" not in written["probe"]
    assert read_info(run).model == top
    loaded, _ = load_model(run)
    x = torch.rand(3, 1, SPEC.n_mels, 63)
    with torch.no_grad():
        assert isinstance(loaded, Blend) and torch.equal(loaded(x), model(x))

    plain = make_untrained_run(tmp_path / "plain")  # an ordinary run: model.json as before the field
    assert "probe" not in json.loads((plain / "model.json").read_text())
    assert isinstance(load_model(plain)[0], AudioClassifier) and read_info(plain).model.probe is None

    # a blend whose members disagree, or whose model.pt is one network: one line naming the file
    bad = dict(written, probe={**written["probe"], "n_classes": 4})
    (run / "model.json").write_text(json.dumps(bad))
    with pytest.raises(RunFolderError, match=r"model\.json: probe\.n_classes=4 but n_classes=3"):
        read_info(run)
    (run / "model.json").write_text(json.dumps(dict(written, probe={**written["probe"], "pool": 3})))
    with pytest.raises(RunFolderError, match=r"model\.json: probe\.pool=3 must be a string"):
        read_info(run)
    (plain / "model.json").write_text(json.dumps(written))
    with pytest.raises(RunFolderError, match=r"model\.pt does not fit its model\.json") as err:
        load_model(plain)
    assert "\n" not in str(err.value)


def _tiny_set_forced_to_average(tmp_path, monkeypatch, **set_options):
    """A tiny image set, its TrainConfig (untrained resnet18, one epoch) and ``mode.decide``
    answering ``average`` whatever the inner scores (its record otherwise the real one)."""
    from classify.data.imageset import load_image_set
    from classify.training import mode
    from imageset import make_image_set

    real = mode.decide

    def average(probs, targets, clip, *, multi_label, images):
        return {**real(probs, targets, clip, multi_label=multi_label, images=images), "mode": "average"}

    monkeypatch.setattr(mode, "decide", average)
    images = make_image_set(tmp_path / "img", per_class=8, groups_per_class=4, **set_options)
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, bs=8, epochs=1, freeze_epochs=1,
                      quiet=True, seed=0)
    return load_image_set(images), cfg


@pytest.mark.slow
def test_mode_fit_keeps_the_average_as_one_blended_run_that_predicts_exports_serves_and_reports(tmp_path, monkeypatch):
    import classify
    from classify.training import mode

    ds, cfg = _tiny_set_forced_to_average(tmp_path, monkeypatch, n_classes=3)
    run_dir = tmp_path / "run"
    m = mode.fit(ds, cfg.replace(valid_pct=0.25), run_dir)
    assert m["mode"] == "average" and m["mode_choice"]["kept"].startswith("the average of both")
    assert m["mode_choice"]["probe_head_c"] > 0
    assert json.loads((run_dir / "metrics.json").read_text())["mode"] == "average"
    assert not (run_dir / mode.WORK).exists() and (run_dir / "openset.json").is_file()
    model, info = load_model(run_dir)
    assert isinstance(model, Blend) and info.model.head == "pool" and info.model.probe.head == "linear"
    assert info.model.probe.crop_width == info.model.crop_width == m["crop_width"]

    # the validation fold was scored by the blend: the mean of its members' probabilities
    run = classify.load(run_dir)
    pred = run.predictions
    index = {im: i for i, im in enumerate(ds.table["image"])}
    imgs = [ds.images[index[im]] for im in pred["image"]]
    p1, _ = predict_windows(model.fine_tune, imgs, width=info.model.crop_width)
    p2, _ = predict_windows(model.probe, imgs, width=info.model.crop_width)
    stored = pred[[f"p_{c}" for c in ds.classes]].to_numpy(float)
    assert np.allclose(stored, ((p1 + p2) / 2).numpy(), atol=2e-5)

    # predict (torch and the ONNX export) and the report read it like any run
    clip = np.random.default_rng(0).standard_normal(ds.cfg.sr).astype(np.float32) * 0.1
    torch_rows = run.predict(clip, sr=ds.cfg.sr, unknown_threshold=0)
    onnx_path = run.export_onnx()
    onnx_rows = run.predict(clip, sr=ds.cfg.sr, unknown_threshold=0, onnx=True)
    assert (torch_rows["status"] == "ok").all() and (onnx_rows["status"] == "ok").all() and onnx_path.is_file()
    assert torch_rows["label_1"].iloc[0] == onnx_rows["label_1"].iloc[0]
    assert abs(torch_rows["prob_1"].iloc[0] - onnx_rows["prob_1"].iloc[0]) < 1e-4
    import soundfile as sf

    from classify.serve.engine import Engine

    sf.write(tmp_path / "clip.wav", clip, ds.cfg.sr, subtype="FLOAT")
    engine = Engine.load([run_dir])  # serve scores the export too
    try:
        _, _, file_p = engine.score_file(tmp_path / "clip.wav")
    finally:
        engine.close()
    assert abs(float(np.max(file_p)) - torch_rows["prob_1"].iloc[0]) < 1e-4
    page = run.report().read_text()
    assert "the average of the probe and the fine-tune (inner accuracy" in page


@pytest.mark.slow
def test_multi_label_cv_folds_each_keep_their_blend_and_its_inner_threshold(tmp_path, monkeypatch):
    from classify.config import CVConfig
    from classify.training import cv, mode

    ds, cfg = _tiny_set_forced_to_average(tmp_path, monkeypatch, n_classes=3, multi_label=True)
    out = cv.run_cv(ds, CVConfig(train=cfg.replace(out=str(tmp_path / "cv")), folds=2), mode.fit)
    folds = fold_dirs(out)
    assert len(folds) == 2
    for fold in folds:  # each fold decided (here: forced) on its own inner split and kept its own blend
        choice = json.loads((fold / "metrics.json").read_text())["mode_choice"]
        model, info = load_model(fold)
        assert choice["mode"] == "average" and isinstance(model, Blend) and model.multi_label
        assert info.model.threshold == pytest.approx(choice["threshold"])  # chosen on the inner split
    summary = json.loads((out / "cv_metrics.json").read_text())
    assert summary["coverage"]["n_scored"] == ds.n_clips and 0 <= summary["oof"]["lwlrap"] <= 1
