"""classify.data.augment: SpecAugment masks, circular time roll and mixup do what they say."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from classify.data.augment import (  # noqa: E402
    augment_batch, freq_mixstyle, mask_time_freq, mixup, roll_time, time_stretch)
from classify.errors import ClassifyError  # noqa: E402
from classify.config import AugmentConfig  # noqa: E402


def runs(mask_1d: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-d bool tensor."""
    out, n = [], 0
    for v in mask_1d.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_masks_zero_whole_columns_and_rows_of_bounded_bands():
    torch.manual_seed(0)
    B, C, H, W = 64, 2, 20, 50
    x = torch.rand(B, C, H, W) + 0.5  # no zeros before masking
    cfg = AugmentConfig(time_masks=2, time_mask_frac=0.1, freq_masks=1, freq_mask_frac=0.2, roll=False, mixup=0)
    out = mask_time_freq(x, cfg)
    zero = out == 0
    assert zero[:, 0].equal(zero[:, 1])  # the same mask on every channel
    z = zero[:, 0]
    cols, rows = z.all(dim=1), z.all(dim=2)  # (B, W) masked columns, (B, H) masked rows
    expected = cols[:, None, :] | rows[:, :, None]
    assert z.equal(expected)  # nothing zeroed but whole columns and whole rows
    assert torch.equal(out[~zero], x[~zero])  # the rest untouched
    for b in range(B):
        assert cols[b].sum() <= 2 * int(0.1 * W) and rows[b].sum() <= 1 * int(0.2 * H)
        assert all(r <= int(0.2 * H) for r in runs(rows[b]))  # one band: one run, at most 4 rows
    assert cols.any(dim=1).float().mean() > 0.5 and rows.any(dim=1).float().mean() > 0.5  # masks happen
    assert len({tuple(c.nonzero().flatten().tolist()) for c in cols}) > 10  # per example, not shared


def test_no_masks_when_fractions_are_zero():
    x = torch.rand(4, 1, 8, 16) + 0.5
    cfg = AugmentConfig(time_masks=3, time_mask_frac=0.0, freq_masks=3, freq_mask_frac=0.0, roll=False, mixup=0)
    assert torch.equal(mask_time_freq(x, cfg), x)


def test_roll_is_a_circular_time_shift_per_example():
    torch.manual_seed(1)
    x = torch.rand(32, 3, 4, 10)
    out = roll_time(x)
    shifts = []
    for b in range(32):
        match = [s for s in range(10) if torch.equal(out[b], torch.roll(x[b], s, dims=-1))]
        assert len(match) == 1  # exactly a roll along time (columns), rows and channels kept
        shifts.append(match[0])
    assert len(set(shifts)) > 3  # random per example


def test_mixup_mixes_images_and_labels_with_the_same_weights():
    torch.manual_seed(2)
    B, K = 16, 16
    x = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 1, 2, 3).clone()  # image i == i
    y = torch.eye(K)[:B]  # label i == class i
    xm, ym = mixup(x, y, alpha=0.4)
    assert torch.allclose(ym.sum(1), torch.ones(B))
    lam = ym.max(1).values  # the weight of the example's own label
    assert (lam >= 0.5 - 1e-6).all()
    # the image value is the label-weighted mean of the class indices: images and labels mixed alike
    assert torch.allclose(xm[:, 0, 0, 0], ym @ torch.arange(K, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(xm.flatten(1).std(1), torch.zeros(B))  # whole images mixed, not pixels
    mixed = (lam < 0.999) & (ym.argmax(1) == torch.arange(B))
    assert mixed.sum() >= B // 2  # most rows really are mixtures with their own label dominant


def test_augment_batch_keeps_soft_targets_and_shape():
    torch.manual_seed(3)
    x, y = torch.rand(8, 1, 16, 32) + 0.5, torch.eye(4)[torch.arange(8) % 4]
    xo, yo = augment_batch(x, y, AugmentConfig())
    assert xo.shape == x.shape and yo.shape == y.shape and torch.allclose(yo.sum(1), torch.ones(8))
    xo, yo = augment_batch(x, y, AugmentConfig(time_masks=0, freq_masks=0, roll=False, mixup=0))
    assert torch.equal(xo, x) and torch.equal(yo, y)


def test_freq_mixstyle_gives_each_row_a_mix_of_two_examples_statistics():
    torch.manual_seed(0)
    B, H, W = 6, 8, 40
    # example b's row h has level b + h and spread 1 + b: the styles differ per example and row
    base = torch.randn(B, 1, H, W)
    base = (base - base.mean(3, keepdim=True)) / base.std(3, keepdim=True, unbiased=False)
    level = torch.arange(B).view(B, 1, 1, 1) + torch.arange(H).view(1, 1, H, 1)
    spread = 1.0 + torch.arange(B).view(B, 1, 1, 1).float()
    x = base * spread + level
    torch.manual_seed(1)
    out = freq_mixstyle(x, p=1.0, alpha=0.3, eps=0.0)
    assert out.shape == x.shape
    mu, sig = out.mean((1, 3)), out.std((1, 3), unbiased=False)       # (B, H)
    # the normalised content is unchanged, only each row's level and spread move
    assert torch.allclose((out - mu[:, None, :, None]) / sig[:, None, :, None], base, atol=1e-4)
    # each example's new statistics are a convex mix (weight lam per example) of its own and one other's
    own_mu, own_sig = level[:, 0, :, 0].float(), spread.view(B, 1).expand(B, H)
    moved = 0
    for b in range(B):
        fits = []
        for o in range(B):
            if o == b:
                continue
            d = own_mu[b] - own_mu[o]
            lam = ((mu[b] - own_mu[o]) / d).mean()
            ok = (torch.allclose(mu[b], lam * own_mu[b] + (1 - lam) * own_mu[o], atol=1e-3)
                  and torch.allclose(sig[b], lam * own_sig[b] + (1 - lam) * own_sig[o], atol=1e-3))
            fits.append(bool(ok) and 0 <= lam <= 1)
        same = torch.allclose(mu[b], own_mu[b], atol=1e-3) and torch.allclose(sig[b], own_sig[b], atol=1e-3)
        assert same or any(fits)
        moved += not same
    assert moved >= B // 2  # p=1: every example restyled (unless paired with itself)


def test_freq_mixstyle_share_zero_or_one_example_is_the_identity():
    x = torch.rand(16, 1, 8, 16)
    assert torch.equal(freq_mixstyle(x, p=0.0, alpha=0.3), x)
    assert torch.equal(freq_mixstyle(x[:1], p=1.0, alpha=0.3), x[:1])
    torch.manual_seed(0)
    restyled = torch.stack([((freq_mixstyle(x, p=0.5, alpha=0.3) - x).abs() > 1e-3).flatten(1).any(1)
                            for _ in range(100)])
    assert 0.35 < restyled.float().mean() < 0.55  # about half the examples (15/16 paired with another)


def test_augment_config_rejects_bad_mixstyle_and_mixup_values():
    for bad in ({"mixstyle": 1.5}, {"mixstyle": -0.1}, {"mixstyle_alpha": 0.0}, {"mixup": -1.0}):
        with pytest.raises(ClassifyError, match="must be"):
            AugmentConfig(**bad)
    assert AugmentConfig(mixstyle=0.4).active and not AugmentConfig(0, 0.1, 0, 0.1, False, 0.0).active
    assert not AugmentConfig.none().active and not AugmentConfig(stretch=0.2).none().active


def test_time_stretch_scales_each_example_about_the_centre_and_keeps_rows():
    B, H, W = 64, 3, 41
    x = torch.zeros(B, 1, H, W)
    x[:, :, :, 15:26] = torch.arange(H, dtype=torch.float32).view(1, 1, H, 1) + 1  # an 11-frame event, centred
    torch.manual_seed(0)
    y = time_stretch(x, 0.3)
    assert y.shape == x.shape and torch.equal(time_stretch(x, 0.0), x)
    span = (y[:, 0, 0] > 0.5).sum(1).float()  # frames the event covers after the stretch
    assert span.min() >= 11 * 0.7 - 2 and span.max() <= 11 * 1.3 + 2 and span.std() > 1  # per-example factors
    on = y[:, 0, :, 20]  # the centre column: still the event, each row its own level
    assert torch.allclose(on, torch.arange(H, dtype=torch.float32).expand(B, H) + 1, atol=1e-5)
    mid = (y[:, 0, 0] > 0.5).float()
    centre = (mid * torch.arange(W)).sum(1) / mid.sum(1)
    assert torch.allclose(centre, torch.full((B,), 20.0), atol=0.6)  # stretched about the centre
    with pytest.raises(ClassifyError, match="stretch"):
        AugmentConfig(stretch=1.0)
