"""``--cut``: backbones without their last stages, GeM pooling, and the ImageNet ``--head-only`` probe.

On esc50-dev a logistic head on efficientnet_lite0's stage-6 map (cut 2, GeM, 224 rows) scored
78.6% against 69.4% on the whole network's 1280 features (README); these tests pin the mechanics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from classify.models import archs
from classify.cli import main
from classify.config import TrainConfig
from classify.errors import ClassifyError
from classify.models.classifier import LinearHead, build_model, gem
from test_audioset_fit import assert_run_predicts_its_csv


def test_lite0_stages_are_the_papers():
    body, _ = archs.get_arch("efficientnet_lite0").factory(False, None)
    assert body.stage_ends() == [1, 3, 5, 8, 11, 15, 16]  # 7 MBConv stages of 16 blocks


@torch.no_grad()
@pytest.mark.slow
def test_cut_lite0_is_the_prefix_of_the_whole_network():
    torch.manual_seed(0)
    spec = archs.get_arch("efficientnet_lite0")
    whole, n_whole = spec.factory(False, None)
    assert n_whole == 1280
    grabbed = {}
    whole.net._blocks[14].register_forward_hook(lambda m, i, o: grabbed.setdefault("b14", o))
    whole.net._blocks[15].register_forward_hook(lambda m, i, o: grabbed.setdefault("b15", o))
    x = torch.rand(2, 3, 64, 80)
    whole.eval()(x)
    for n, key, channels in ((2, "b14", 192), (1, "b15", 320)):
        body, _ = spec.factory(False, None)
        body.load_state_dict(whole.state_dict())
        body, n_features = spec.cut(body, n, "efficientnet_lite0")
        out = body.eval()(x)
        assert n_features == channels == out.shape[1]
        assert torch.allclose(out, grabbed[key], atol=1e-5)
        keys = body.state_dict()
        assert not any(k.startswith("net._conv_head") for k in keys)
        assert any(k.startswith("net._blocks.15.") for k in keys) == (n == 1)


@torch.no_grad()
def test_cut_resnet_drops_layer4():
    import torchvision  # here, not at collection: its import pulls torch._dynamo
    torch.manual_seed(0)
    ref = torchvision.models.resnet18().eval()
    whole = torch.nn.Sequential(*list(ref.children())[:-2])  # the body torchvision_body builds
    body, n = archs.get_arch("resnet18").cut(whole, 1, "resnet18")
    x = torch.rand(1, 3, 64, 64)
    ref.eval()
    expect = ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x)))))))
    assert n == 256 and torch.allclose(body.eval()(x), expect, atol=1e-5)


def test_impossible_cuts_are_one_line_errors():
    with pytest.raises(ClassifyError, match=r"efficientnet_lite0 has 8 stages after the stem; cut 0 to 7"):
        build_model(archs.get_arch("efficientnet_lite0"), n_classes=3, in_channels=1, pretrained=False, cut=8)
    with pytest.raises(ClassifyError, match=r"--cut 1: efficientat_mn04 cannot be cut.*efficientnet_lite0"):
        build_model(archs.get_arch("efficientat_mn04"), n_classes=3, in_channels=1, pretrained=False, cut=1,
                    arch="efficientat_mn04")
    with pytest.raises(ClassifyError, match="--cut=-1 must be >= 0"):
        TrainConfig(images="x", cut=-1)


def test_gem_lies_between_mean_and_max():
    torch.manual_seed(0)
    fmap = torch.randn(2, 5, 4, 6)
    g = gem(fmap)
    pos = fmap.clamp_min(1e-6)
    assert torch.allclose(g, (pos ** 3).mean((2, 3)) ** (1 / 3))
    assert (g >= pos.mean((2, 3)) - 1e-6).all() and (g <= pos.amax((2, 3)) + 1e-6).all()
    assert torch.allclose(gem(torch.full((1, 2, 3, 3), 0.7)), torch.full((1, 2), 0.7))
    head = LinearHead(5, 3, pool="gem")
    assert torch.allclose(head.pool(fmap), g)
    with pytest.raises(ValueError, match="pool='max'"):
        LinearHead(5, 3, pool="max")


def test_config_resolves_the_arch_choice():
    lite = TrainConfig(images="x", arch="efficientnet_lite0")
    tune = lite.replace(head_only=False).resolved()
    assert tune.cut == 0 and tune.input_height is None  # fine-tuning: whole net
    assert lite.resolved().cut is None  # mode undecided (training.mode): each mode resolves its own
    probe = lite.replace(head_only=True).resolved()
    assert (probe.cut, probe.input_height) == (2, 224)
    mine = lite.replace(head_only=True, cut=1, input_height=128).resolved()
    assert (mine.cut, mine.input_height) == (1, 128)
    eat = TrainConfig(images="x", arch="efficientat_mn04", head_only=True).resolved()
    assert (eat.cut, eat.input_height) == (0, None)


@pytest.mark.slow
def test_head_only_lite0_probe_run_round_trips(tiny_images, tmp_path):
    out = tmp_path / "probe"
    assert main(["fit", str(tiny_images), "--out", str(out), "--head-only", "-q"]) == 0
    model_json = json.loads((out / "model.json").read_text())
    assert (model_json["cut"], model_json["pool"], model_json["input_height"]) == (2, "gem", 224)
    assert json.loads((out / "train.json").read_text())["cut"] == 2
    assert np.load(out / "valid_embeddings.npy").shape[1] == 192
    assert_run_predicts_its_csv(out, tiny_images)


@pytest.mark.slow
def test_fine_tune_with_a_cut_round_trips(tiny_images, tmp_path):
    out = tmp_path / "ft"
    assert main(["fit", str(tiny_images), "--out", str(out), "--arch", "resnet18", "--no-pretrained",
                 "--cut", "1", "--epochs", "1", "--freeze-epochs", "0", "--bs", "4", "-q"]) == 0
    model_json = json.loads((out / "model.json").read_text())
    assert (model_json["cut"], model_json["pool"]) == (1, "mean")
    state = torch.load(out / "model.pt", weights_only=True)
    assert not any(k.startswith("body.7.") for k in state)  # layer4 is gone
    assert_run_predicts_its_csv(out, tiny_images)


def test_bad_cut_on_the_cli_is_exit_2(tiny_images, tmp_path, capsys):
    assert main(["fit", str(tiny_images), "--out", str(tmp_path / "r"), "--arch", "resnet18", "--no-pretrained",
                 "--cut", "9", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --cut 9: this body has 4 stages; cut 0 to 3")


# ------------------------------------------------------------------ fine-tune or head-only by default
def test_small_sets_default_to_the_head_only_probe(tiny_images, caplog):
    from classify.commands import choose_mode, clips_per_class
    from classify.config import HEAD_ONLY_BELOW
    from classify.data.imageset import load_image_set

    ds = load_image_set(tiny_images)
    assert clips_per_class(ds) == 6 < HEAD_ONLY_BELOW
    base = TrainConfig(images=str(tiny_images))
    with caplog.at_level("INFO", logger="classify"):
        assert choose_mode(ds, base).head_only is True
    assert "pass --fine-tune" in caplog.text
    from classify.training.mode import shortcut

    assert shortcut(base, HEAD_ONLY_BELOW) is None  # larger sets: both scored on an inner split
    from classify.commands import fit_function
    from classify.training import mode

    assert fit_function(base.replace(head_only=None)) is mode.fit
    assert choose_mode(ds, base.replace(pretrained=False)).head_only is False  # random features: train them
    assert choose_mode(ds, base.replace(head_only=False)).head_only is False  # --fine-tune wins


@pytest.mark.slow
def test_small_sets_fit_head_only_by_default(tiny_images, tmp_path):
    out = tmp_path / "auto"
    assert main(["fit", str(tiny_images), "--out", str(out), "-q"]) == 0
    assert json.loads((out / "train.json").read_text())["head_only"] is True
    assert json.loads((out / "model.json").read_text())["head"] == "linear"


def test_mode_flags_parse_and_exclude_each_other(capsys):
    from classify.cli import build_parser

    p = build_parser()
    assert p.parse_args(["fit", "imgs"]).head_only is None
    assert p.parse_args(["fit", "imgs", "--fine-tune"]).head_only is False
    assert p.parse_args(["fit", "imgs", "--head-only"]).head_only is True
    with pytest.raises(SystemExit):
        p.parse_args(["fit", "imgs", "--fine-tune", "--head-only"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
def test_a_cut_gem_head_exports_to_onnx_with_the_same_scores(tmp_path):
    from classify.prediction.export import export_onnx
    from classify.prediction.onnx_predict import onnx_scorer
    from classify.prediction.ensemble import torch_scorer
    from classify.testing import make_untrained_run

    run = make_untrained_run(tmp_path / "run", model_info={"head": "linear", "cut": 1, "pool": "gem"})
    state = torch.load(run / "model.pt", weights_only=True)
    assert state["head.shift"].shape == (256,)  # resnet18 without layer4
    out = export_onnx(run, tmp_path / "cut.onnx")
    x = np.random.default_rng(0).integers(0, 256, (3, 1, 32, 40), dtype=np.uint8)
    assert np.abs(onnx_scorer(out).score(x) - torch_scorer(run).score(x)).max() < 1e-4
