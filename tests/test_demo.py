"""`classify demo` runs the defaults end to end and gets its easy synthetic classes right."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_defaults_reach_high_accuracy_and_label_new_clips(tmp_path, capsys):
    from classify.cli import main

    assert main(["demo", str(tmp_path / "demo"), "-q"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "demo" / "run"
    train = json.loads((run / "train.json").read_text())
    assert train["arch"] == "efficientat_mn04" and train["head_only"] is True  # the defaults chose
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95
    assert "held-out clips labelled right: 12/12" in out
    assert (run / "report" / "index.html").is_file()
    assert "python -m webbrowser file://" in out
