"""Issue 23 point 10: the leaky-split check (classify.scoring.leak) on synthetic embeddings, its
wiring into fit (metrics.json, report), and fsdd's real leak (skips without the data)."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from classify.scoring.leak import MIN_SHARE, binomial_sf, leak_check
from conftest import SHARED_DATA, require


def recordings(seed=0, *, n_classes=4, per_class=20, clips=4, d=32, spread=0.15):
    """Clips cut from recordings: each recording a point near its class centre, its clips close
    to it. Returns (X [n, d], labels, groups)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, d))
    X, labels, groups = [], [], []
    for c in range(n_classes):
        for r in range(per_class):
            rec = centres[c] + rng.normal(0, 1.0, d)
            for _ in range(clips):
                X.append(rec + rng.normal(0, spread, d))
                labels.append(f"c{c}")
                groups.append(f"c{c}r{r}")
    return np.array(X), np.array(labels), np.array(groups)


def test_a_split_that_cuts_through_recordings_is_flagged_and_a_grouped_one_is_not():
    X, y, g = recordings()
    rng = np.random.default_rng(1)
    v = rng.random(len(X)) < 0.2  # clips of one recording on both sides
    leaky = leak_check(X[~v], y[~v], X[v], y[v], train_groups=g[~v], valid_groups=g[v])
    assert leaky.leaky and leaky.share > 0.5 and leaky.p_value < 1e-6, leaky
    held = {f"c{c}r{r}" for c in range(4) for r in range(4)}  # whole recordings held out
    v = np.array([x in held for x in g])
    clean = leak_check(X[~v], y[~v], X[v], y[v], train_groups=g[~v], valid_groups=g[v])
    assert not clean.leaky and clean.n_twin_groups / clean.n_groups < MIN_SHARE, clean
    assert "no sign" in clean.line() and "--group-from-name" in leaky.line()


def test_without_groups_the_rule_cannot_see_hidden_recordings():
    """Stated limit: with every clip its own group the reference includes the hidden twins."""
    X, y, _ = recordings(seed=2)
    v = np.random.default_rng(3).random(len(X)) < 0.2
    assert not leak_check(X[~v], y[~v], X[v], y[v]).leaky


def test_binomial_tail_matches_scipy():
    from scipy.stats import binom

    for k, n, p in [(0, 10, 0.1), (3, 10, 0.05), (25, 100, 0.05), (60, 500, 0.05), (7, 7, 0.5)]:
        assert binomial_sf(k, n, p) == pytest.approx(binom.sf(k - 1, n, p), rel=1e-9, abs=1e-300)


@pytest.mark.slow
def test_head_only_fit_records_the_check_in_metrics_and_the_report(tmp_path):
    from classify.cli import main
    from imageset import make_image_set
    from spec2img.config import PRESETS

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3,
                            **PRESETS["efficientat"])
    out = tmp_path / "run"
    assert main(["fit", str(images), "--out", str(out), "--arch", "efficientat_mn04", "--head-only", "-q"]) == 0
    leak = json.loads((out / "metrics.json").read_text())["leak"]
    assert {"share", "chance", "tau", "p_value", "leaky", "line"} <= set(leak)
    assert html.escape(leak["line"]) in (out / "report" / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.realdata
def test_fsdd_with_and_without_speaker_groups(tmp_path, capsys):
    """fsdd, 5 takes of every digit by every speaker. With --group-from-name the default split holds
    out whole speakers: not flagged. Without groups the check cannot see speakers, and says so."""
    from classify.cli import main
    from spec2img.cli import main as spec2img_main

    rec = require(SHARED_DATA / "fsdd" / "recordings")
    audio = tmp_path / "audio"
    audio.mkdir()
    for f in sorted(rec.glob("*.wav")):
        if int(f.stem.split("_")[2]) < 5:
            (audio / f.name).symlink_to(f)
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n" + "".join(f"{p.name},{p.name.split('_')[0]}\n" for p in sorted(audio.iterdir())))
    base = ["--labels", str(csv), "--file-col", "file", "--label-col", "label", "--follow-symlinks", "-q"]
    assert spec2img_main([str(audio), str(tmp_path / "grouped"), *base, "--group-from-name", r"^\d+_([a-z]+)_"]) == 0
    assert spec2img_main([str(audio), str(tmp_path / "plain"), *base]) == 0
    common = ["--arch", "efficientat_mn04", "--head-only", "-q"]
    for name in ("grouped", "plain"):
        assert main(["fit", str(tmp_path / name), "--out", str(tmp_path / f"run_{name}"), *common]) == 0
    grouped = json.loads((tmp_path / "run_grouped" / "metrics.json").read_text())["leak"]
    plain = json.loads((tmp_path / "run_plain" / "metrics.json").read_text())["leak"]
    assert not grouped["leaky"] and not grouped["no_groups"]
    assert plain["no_groups"] and "--group-from-name" in plain["line"]
    assert "every clip is its own group" in capsys.readouterr().err
