"""Recipe options: LP-FT starts the head from the probe; EMA's averaged weights are what is saved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from classify.config import TrainConfig
from classify.data.imageset import load_image_set
from classify.models.archs import get_arch
from classify.models.classifier import build_model
from classify.training import recipe
from imageset import make_image_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lp_ft_head_starts_from_the_logistic_probe(tmp_path, monkeypatch):
    from classify.training.featurecache import window_features
    from classify.training.headonly import fit_logistic

    monkeypatch.setenv("CLASSIFY_FEATURE_CACHE", "off")
    ds = load_image_set(make_image_set(tmp_path / "img", n_classes=3, per_class=4, groups_per_class=2))
    cfg = TrainConfig(images="x", arch="resnet18", pretrained=False, lp_ft=True, head_c=0.5, seed=0)
    torch.manual_seed(0)
    model = build_model(get_arch("resnet18"), n_classes=3, in_channels=1, pretrained=False, arch="resnet18",
                        **recipe.head_kwargs(cfg))
    assert type(model.head).__name__ == "LinearHead"
    assert recipe.head_kwargs(cfg.replace(lp_ft=False)) == {}
    idx = np.arange(0, len(ds.images), 2)
    record = recipe.start_head_from_probe(model, ds, idx, cfg, width=24)
    X, owner = window_features(model, [ds.images[i] for i in idx], width=24)
    shift, _scale, W, b = fit_logistic(X, ds.targets[idx][owner], multi_label=False, C=0.5, seed=0)
    np.testing.assert_allclose(model.head.fc.weight.detach().numpy(), W, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.head.fc.bias.detach().numpy(), b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.head.shift.numpy(), shift, rtol=1e-5, atol=1e-6)
    assert record["lp_ft_windows"] == len(X) and record["lp_ft_c"] == 0.5


def test_weight_average_is_an_exponential_moving_average_with_warmup():
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    ema = recipe.WeightAverage(model, epochs=2)
    ema.start(n_batches=5)  # decay 1 - 1/10
    expected = model[0].weight.detach().clone()
    for step in range(1, 31):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model[1].num_batches_tracked += 1
        ema.update()
        d = min(0.9, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * model[0].weight.detach()
    raw = model[0].weight.detach().clone()
    ema.finish()
    torch.testing.assert_close(model[0].weight.detach(), expected)
    assert not torch.equal(model[0].weight.detach(), raw)
    assert int(model[1].num_batches_tracked) == 30  # integer buffers copied, not averaged


@pytest.mark.slow
def test_fit_saves_the_ema_weights_and_lp_ft_skips_the_frozen_phase(tmp_path, monkeypatch):
    import pandas as pd

    from classify.training import train

    seen = {}
    real_finish = recipe.WeightAverage.finish

    def finish(self):
        seen["ema"] = {k: v.clone() for k, v in self.shadow.items()}
        seen["raw"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        real_finish(self)

    monkeypatch.setattr(recipe.WeightAverage, "finish", finish)
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3)
    ds = load_image_set(images)
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, bs=8, epochs=2, freeze_epochs=1,
                      quiet=True, seed=0, lp_ft=True, ema_epochs=3.0)
    m = train.fit(ds, cfg, tmp_path / "run")
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    moved = [k for k in seen["ema"] if seen["ema"][k].is_floating_point()
             and not torch.equal(seen["ema"][k], seen["raw"][k])]
    assert moved  # the average differs from the last step's weights ...
    for k in moved:
        torch.testing.assert_close(saved[k].float(), seen["ema"][k].float())  # ... and it is what was saved
    assert m["lp_ft_windows"] > 0
    assert set(pd.read_csv(tmp_path / "run" / "history.csv")["phase"]) == {"unfrozen"}
