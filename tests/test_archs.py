import urllib.error
from pathlib import Path

import pytest
import torch

from classify.models import archs
from classify.cli import main
from classify.errors import ClassifyError, WeightsError
from classify.models.classifier import AudioClassifier, build_model


@pytest.mark.slow
def test_weights_file_loads_a_saved_state_dict(tmp_path):
    import torchvision  # here, not at collection: its import pulls torch._dynamo
    ref = torchvision.models.resnet18()
    torch.nn.init.normal_(ref.conv1.weight)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    model = build_model(archs.get_arch("resnet18"), n_classes=4, in_channels=1, pretrained=True,
                        weights_file=tmp_path / "r18.pth")
    # grey input: the first conv's kernels summed over RGB
    assert torch.allclose(model.body[0].weight, ref.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.body[1].running_var, ref.bn1.running_var)
    x = torch.rand(2, 1, 32, 40)
    assert model.eval()(x).shape == (2, 4)


def test_weights_file_that_does_not_fit_says_so(tmp_path):
    import torchvision  # here, not at collection: its import pulls torch._dynamo
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="does not fit torchvision resnet34"):
        archs.get_arch("resnet34").factory(True, tmp_path / "r18.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a torch state dict"):
        archs.get_arch("resnet18").factory(True, tmp_path / "junk.pth")


def _offline(monkeypatch, tmp_path):
    import torchvision  # here, not at collection: its import pulls torch._dynamo
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network, raising=False)


def test_missing_imagenet_weights_is_one_clear_message(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(WeightsError) as err:
        archs.get_arch("resnet34").factory(True, None)
    msg = str(err.value)
    assert "resnet34 ImageNet weights are not in the torch cache" in msg
    assert "--weights FILE or --no-pretrained" in msg and "efficientnet_lite0" in msg
    assert "\n" not in msg


def test_missing_weights_through_the_cli_is_exit_2_without_traceback(monkeypatch, tmp_path, tiny_images, capsys):
    _offline(monkeypatch, tmp_path)
    rc = main(["fit", str(tiny_images), "--arch", "resnet34", "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: resnet34 ImageNet weights") and "Traceback" not in err


@pytest.mark.slow
def test_efficientnet_lite0_ships_imagenet_weights():
    spec = archs.get_arch("efficientnet_lite0")
    assert spec.mean == (0.5, 0.5, 0.5)
    model = build_model(spec, n_classes=3, in_channels=1, pretrained=True)
    assert isinstance(model, AudioClassifier)
    assert abs(float(model.body.net._bn0.running_var.mean()) - 1.0) > 1e-3  # not a fresh BatchNorm
    assert model.eval()(torch.rand(2, 1, 64, 100)).shape == (2, 3)


def test_unknown_arch_lists_the_choices():
    with pytest.raises(ClassifyError, match="efficientnet_lite0"):
        archs.get_arch("resnet9000")
    with pytest.raises(WeightsError, match="no such weights file"):  # the AudioSet slot is filled
        archs.get_arch("efficientat_mn04").factory(True, Path("/nonexistent/mn04_as_mAP_432.pt"))
