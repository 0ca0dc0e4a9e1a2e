"""Report pages that fit what was run: head-only runs, the headline's basis, suspect labels, media
found from anywhere (and never lost on a rebuild), numbers as people write them, escaping."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from classify.config import TrainConfig
from classify.report import ReportConfig, build_report
from classify.report.build import ReportError
from classify.report.compute import human_number, plural
from classify.report.synthetic import write_synthetic_run

HOSTILE = ["<img src=x onerror=\"window.__pwned=1\">", "$x^$", "a&b \"q\" 'x'", "dog", "</script><b>", "c$1$"]


def page_data(index):
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', index.read_text(), re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def page_without_data(index) -> str:
    return re.sub(r'<script type="application/json" id="report-data">.*?</script>', "", index.read_text(), flags=re.S)


def test_numbers_and_plurals():
    assert [human_number(v) for v in (15000.0, 0.003, 3e-5, 0.25, 32000, 1 / 3, True)] == \
        ["15000", "0.003", "3e-5", "0.25", "32000", "0.3333", "true"]
    assert plural(1, "clip") == "1 clip" and plural(2, "clip") == "2 clips" and plural(3, "class", "classes") == "3 classes"


def test_head_only_report_shows_the_fit_not_training_curves(tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=4, n_clips=16, tiles=1, head_only=True)
    index = build_report(paths["run"], config=ReportConfig(tsne=False))
    html = index.read_text()
    assert '<section id="training">' not in html and '<section id="headfit">' in html
    assert not (index.parent / "plots" / "history.png").exists()
    assert not (index.parent / "plots" / "lr_find.png").exists()
    head = html.split('<section id="headfit">')[1].split("</section>")[0]
    for words in ("frozen", "LogisticRegression", "384 values per window", "fixed at C = 1", "L2 penalty"):
        assert words in head, words
    summary = html.split('<section id="summary">')[1].split("</section>")[0]
    for unused in ("mixup", "freeze_epochs", "lr_find", ">epochs<", ">lr<"):
        assert unused not in summary, unused
    assert ">head_c<" in summary


def test_fine_tune_report_keeps_curves_and_says_what_the_headline_is(tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=4, n_clips=12, tiles=3)
    index = build_report(paths["run"], config=ReportConfig(tsne=False))
    html = index.read_text()
    assert '<section id="training">' in html and (index.parent / "plots" / "history.png").is_file()
    explain = re.search(r'<p class="hint" id="headline-explain">(.*?)</p>', html).group(1)
    assert "per clip over 12 clips" in explain and "36 windows" in explain and "Per window" in explain
    # no lr_find curve recorded: a sentence a user can act on
    (paths["run"] / "lr_find.json").unlink()
    html = build_report(paths["run"], config=ReportConfig(tsne=False)).read_text()
    assert "fixed at 0.003 (--lr)" in html and "--lr auto" in html
    # numbers as people write them, with units
    spec = json.loads((paths["run"] / "spectrogram.json").read_text())
    spec.update(fmax=15000.0, sr=32000)
    (paths["run"] / "spectrogram.json").write_text(json.dumps(spec))
    html = build_report(paths["run"], config=ReportConfig(tsne=False)).read_text()
    assert "15000 Hz" in html and "32000 Hz" in html and "e+04" not in html


def test_cv_report_lists_suspect_labels(tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=5, n_clips=40, tiles=2, folds=4, flipped=4, seed=1)
    flipped = {f"class{c % 5}/clip {c:04d}.wav" for c in range(36, 40)}
    index = build_report(paths["run"], config=ReportConfig(tsne=False))
    html = index.read_text()
    assert '<section id="suspects">' in html
    data = page_data(index)
    sus = data["suspects"]
    assert len(sus) >= 2
    top = {data["items"]["src"][s["r"]] for s in sus[:2]}
    assert top <= flipped, top  # the worst suspects are flipped clips (precision: tests/test_suspects.py)
    for s in sus:
        assert s["g"] != s["s"] and all(0 <= p <= 1 for _, p in s["top"])
    # every suspect card has its thumbnail and audio in the report folder
    for s in sus:
        assert (index.parent / data["items"]["thumb"][str(s["r"])]).is_file()
        assert (index.parent / data["items"]["audio"][str(s["r"])]).is_file()
    csv = (index.parent / "suspect_labels.csv").read_text().splitlines()
    assert csv[0] == "file,given,suggested,score" and len(csv) == len(sus) + 1
    # the manifest has manually_verified (every 4th clip unverified): the count is stated
    assert re.search(r"\((\d+) of them not manually verified\)", html)
    # single runs have no suspect section (no out-of-fold predictions of every clip)
    single = write_synthetic_run(tmp_path / "one", n_classes=3, n_clips=9, tiles=1)
    assert '<section id="suspects">' not in build_report(single["run"], config=ReportConfig(tsne=False)).read_text()


@pytest.mark.parametrize("folds", [0, 3])
def test_user_strings_are_escaped_and_dollar_signs_plot(tmp_path, folds):
    paths = write_synthetic_run(tmp_path, classes=HOSTILE, n_clips=24, tiles=1, folds=folds, flipped=3)
    index = build_report(paths["run"], config=ReportConfig(tsne=False))
    html = page_without_data(index)
    assert "onerror=" not in html.replace("onerror=&quot;", "")
    assert "<img src=x" not in html and "</script><b>" not in html
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in html
    assert (index.parent / "plots" / "classes.png").is_file()  # "$x^$" drawn as text, not mathtext
    assert page_data(index)["classes"] == HOSTILE


def test_media_found_from_anywhere_and_never_lost(tmp_path, monkeypatch):
    paths = write_synthetic_run(tmp_path / "proj", n_classes=3, n_clips=9, tiles=1)
    run = paths["run"]
    # train.json as fit writes it when run from tmp_path/proj with a relative images path
    monkeypatch.chdir(tmp_path / "proj")
    TrainConfig(images="images").save(run)
    monkeypatch.chdir(tmp_path)  # the report is built from elsewhere
    index = build_report(run, config=ReportConfig(tsne=False))
    good = page_data(index)["items"]
    assert good["thumb"] and good["audio"]
    # the whole project folder moves: found again through the path relative to the run folder
    shutil.move(tmp_path / "proj", tmp_path / "moved")
    run = tmp_path / "moved" / "run"
    index = build_report(run, config=ReportConfig(tsne=False))
    assert len(page_data(index)["items"]["thumb"]) == len(good["thumb"])
    # the images and audio vanish: the good report is kept, the error says how to fix it
    os.rename(tmp_path / "moved" / "images", tmp_path / "gone")
    before = index.read_text()
    with pytest.raises(ReportError, match="not replaced.*--images-dir.*--force"):
        build_report(run, config=ReportConfig(tsne=False))
    assert index.read_text() == before
    from classify.cli import main

    assert main(["report", str(run), "--no-tsne"]) == 2
    assert index.read_text() == before
    assert main(["report", str(run), "--no-tsne", "--images-dir", str(tmp_path / "gone")]) == 2  # audio still lost
    assert main(["report", str(run), "--no-tsne", "--images-dir", str(tmp_path / "gone"),
                 "--audio-dir", str(tmp_path / "moved" / "audio")]) == 0
    assert page_data(index)["items"]["thumb"]
    assert main(["report", str(run), "--no-tsne", "--force"]) == 0
    assert page_data(index)["items"]["thumb"] == {}
