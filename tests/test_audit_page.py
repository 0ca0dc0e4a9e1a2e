"""Audit rules (clipping as a flat top, silence, DC offset), the terminal summary and the page."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
import soundfile as sf

from spec2img import audit as A
from spec2img.labels import ClipLabels

SR = 8000


def _write(path, y, subtype="FLOAT"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(y, np.float32), SR, subtype=subtype)
    return path


def _sine(seconds=1.0, amp=0.5, freq=440.0, seed=0):
    """A tone in noise: like real audio, only its single loudest sample reaches the peak."""
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return amp * (0.6 * np.sin(2 * np.pi * freq * t) + 0.12 * noise)


@pytest.fixture()
def corpus(tmp_path):
    d = tmp_path / "audio"
    y = _sine()
    norm = y / np.abs(y).max()  # peak-normalised: one or two samples touch full scale, no flat top
    _write(d / "ok" / "normalised.wav", norm)
    flat = y.copy()
    flat[1000:1005] = 1.0  # a 5-sample flat top
    _write(d / "bad" / "flat_top.wav", flat)
    spikes = y.copy()
    spikes[::500] = 1.0  # 16 isolated full-scale samples = 0.2% of 8000 > 0.1%
    _write(d / "bad" / "many_spikes.wav", spikes)
    block = A.FRAMES_PER_BLOCK * int(round(A.FRAME_SECONDS * SR))
    across = _sine(seconds=12.0)
    across[block - 2:block + 2] = -1.0  # a 4-sample run split by the streaming block boundary
    _write(d / "bad" / "across_blocks.wav", across)
    _write(d / "bad" / "dc.wav", _sine(amp=0.3) + 0.05)
    _write(d / "bad" / "silent.wav", np.zeros(SR))
    two = np.zeros((SR, 2))
    two[:, 0] = _sine() * 0.5
    two[3000:3002, 1] = 1.0  # only 2 consecutive full-scale samples, 0.0125% of samples: not clipped
    _write(d / "ok" / "stereo.wav", two)
    return d


def test_issue_rules(corpus):
    df = A.audit_table(corpus).set_index("path")
    issues = {p: set(filter(None, str(v).split(";"))) for p, v in df["issues"].fillna("").items()}
    assert issues["ok/normalised.wav"] == set() and df.loc["ok/normalised.wav", "peak_dbfs"] == pytest.approx(0, abs=1e-3)
    assert issues["ok/stereo.wav"] == set() and df.loc["ok/stereo.wav", "clipped_run"] == 2
    assert issues["bad/flat_top.wav"] == {"clipped"} and df.loc["bad/flat_top.wav", "clipped_run"] == 5
    assert issues["bad/many_spikes.wav"] == {"clipped"} and df.loc["bad/many_spikes.wav", "clipped_run"] == 1
    assert "clipped" in issues["bad/across_blocks.wav"] and df.loc["bad/across_blocks.wav", "clipped_run"] == 4
    assert issues["bad/dc.wav"] == {"dc_offset"} and df.loc["bad/dc.wav", "dc_offset"] == pytest.approx(0.05, abs=1e-3)
    assert issues["bad/silent.wav"] == {"silent"}


def test_terminal_line_names_issue_kinds(corpus, tmp_path):
    res = A.audit(corpus, out_dir=tmp_path / "out", jobs=1)
    line = res.line()
    assert "7 files" in line and "2 classes" in line
    assert "5 files with issues (3 clipped, 1 silent, 1 dc_offset)" in line, line
    assert str(tmp_path / "out" / "audit.html") in line


def test_page_rules_charts_and_no_na(corpus, tmp_path):
    labels = {"ok/normalised.wav": ClipLabels(("$x^$",), verified=True),
              "ok/stereo.wav": ClipLabels(("<script>alert(1)</script>",), verified=False),
              "bad/flat_top.wav": ClipLabels(("a&b",), verified=None)}
    res = A.AuditResult(A.audit_table(corpus, labels=labels), None)
    res = A.AuditResult(res.files, A.class_table(res.files))
    page = A.render_html(res, title="<b>dir</b>")
    assert "<NA>" not in page and ">nan<" not in page and "None" not in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>dir</b>" not in page and "$x^$" in page
    for kind, rule in A.RULES.items():
        assert html.escape(rule) in page
    assert page.count("<img") == 2  # classes + a histogram: durations vary (1 s and 12 s)
    assert 'id="issue-table"' in page and 'id="issue-kind"' in page and "<!--report-nav-->" in page
    assert 'href="#classes"' in page and ">verified share<" in page
    # equal durations: one line of text instead of a histogram
    same = res.files[res.files["path"] != "bad/across_blocks.wav"]
    page = A.render_html(A.AuditResult(same, A.class_table(same)))
    assert "All 6 readable files last 1 s." in page and page.count("<img") == 1
