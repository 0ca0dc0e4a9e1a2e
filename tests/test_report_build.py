"""build_report / `classify report` against synthetic run folders written to the RUN_DIR contract."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from classify.cli import main
from classify.config import TrainConfig
from classify.errors import ClassifyError, RunFolderError
from classify.report import ReportConfig, build_report
from classify.report.load import load_run
from classify.runfolder import ModelInfo
from spec2img.config import SpectrogramConfig
from classify.report.synthetic import write_synthetic_run


def page_data(index):
    text = index.read_text()
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("syn"), n_classes=6, n_clips=30, tiles=2, n_audio=12)


def test_report_contents_and_local_references(run, tmp_path):
    out = tmp_path / "rep"
    index = build_report(run["run"], out_dir=out, config=ReportConfig(top_n=10, max_per_cell=3))
    assert index == out / "index.html"
    html = index.read_text()
    for anchor in ("summary", "training", "classes", "confusion", "losses", "tsne", "dataset"):
        assert f'<section id="{anchor}">' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    data = page_data(index)
    assert len(data["items"]["src"]) == 60 and len(data["top"]) == 10
    assert all(len(v) <= 3 for v in data["cells"].values())
    assert set(data["tsne"]) == {"embeddings", "probabilities"}
    assert all(len(data["tsne"]["embeddings"][k]) == 60 for k in (0, 1))
    for href in [*data["items"]["thumb"].values(), *data["items"]["audio"].values()]:
        assert (out / href).is_file()
    # only clips with a WAV get a player; the others are noted, not fatal
    assert 0 < len(data["items"]["audio"]) <= 24
    assert "have no audio file" in html
    for src in re.findall(r'src="([^"]+)"', html):
        assert (out / src).is_file(), src


def test_rebuild_uses_cache_and_prunes(run, tmp_path):
    out = tmp_path / "rep"
    build_report(run["run"], out_dir=out, config=ReportConfig(top_n=20))
    cache = sorted(p.name for p in (out / "cache").iterdir())
    stale = out / "thumbs" / "stale.png"
    stale.write_bytes(b"x")
    build_report(run["run"], out_dir=out, config=ReportConfig(top_n=5, max_per_cell=1))
    assert sorted(p.name for p in (out / "cache").iterdir()) == cache
    assert not stale.exists()
    data = page_data(out / "index.html")
    assert {f"thumbs/{p.name}" for p in (out / "thumbs").iterdir()} == set(data["items"]["thumb"].values())


def test_missing_folders_and_optional_files_degrade_gracefully(tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=4, n_clips=8, tiles=1)
    shutil.rmtree(paths["audio"])
    for name in ("valid_embeddings.npy", "history.csv", "lr_find.json", "metrics.json"):
        (paths["run"] / name).unlink()
    index = build_report(paths["run"], config=ReportConfig(tsne=False))
    html = index.read_text()
    assert "no audio players" in html and "t-SNE uses the output probabilities" in html
    assert page_data(index)["tsne"] == {}
    assert page_data(index)["items"]["audio"] == {}
    # images moved: --images-dir finds them again
    moved = tmp_path / "moved_images"
    paths["images"].rename(moved)
    index = build_report(paths["run"], images_dir=moved, audio_dir=tmp_path / "nowhere", config=ReportConfig(tsne=False))
    assert page_data(index)["items"]["thumb"]
    assert "not a folder" in index.read_text()


def test_multi_label_and_cv(tmp_path):
    multi = write_synthetic_run(tmp_path / "m", n_classes=5, n_clips=20, tiles=1, multi_label=True)
    data = page_data(build_report(multi["run"], config=ReportConfig(tsne=False)))
    assert data["multi_label"] and "cm" not in data
    assert any(len(y) > 1 for y in data["items"]["y"])
    cv = write_synthetic_run(tmp_path / "cv", n_classes=5, n_clips=20, tiles=1, folds=3)
    index = build_report(cv["run"])
    html = index.read_text()
    assert "folds: " in html and "±" in html
    assert list(page_data(index)["tsne"]) == ["probabilities"]


def test_the_report_reads_run_settings_through_the_typed_readers(tmp_path):
    """train.json / model.json / spectrogram.json are read by the readers predict uses (TrainConfig,
    ModelInfo, SpectrogramConfig); an unreadable one becomes a note on the page naming the file and
    the key, and the rest of the page is built."""
    paths = write_synthetic_run(tmp_path, n_classes=4, n_clips=8, tiles=1)
    run = load_run(paths["run"])
    assert isinstance(run.train, TrainConfig) and isinstance(run.model, ModelInfo)
    assert isinstance(run.spectrogram, SpectrogramConfig) and run.window_seconds == 1.0
    assert run.train.images == str(paths["images"]) and run.images_where["images_absolute"] == str(paths["images"])
    train_json = paths["run"] / "train.json"
    train_json.write_text(json.dumps({**json.loads(train_json.read_text()), "epochs": -3}))
    (paths["run"] / "model.json").write_text(json.dumps({"arch": "resnet18"}))
    html = build_report(paths["run"], config=ReportConfig(tsne=False)).read_text()
    assert f"{train_json}: --epochs=-3" in html and "missing key(s)" in html
    assert "train.json missing" in html  # the settings table says what it lacks; the page is still there
    assert len(page_data(paths["run"] / "report" / "index.html")["items"]["y"]) == 8


def test_errors_name_the_file(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        build_report(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    with pytest.raises(RunFolderError, match="classes.json"):
        build_report(tmp_path / "run")
    (tmp_path / "run" / "classes.json").write_text('["a", "b"]')
    with pytest.raises(RunFolderError, match="valid_predictions.csv"):
        build_report(tmp_path / "run")
    (tmp_path / "run" / "valid_predictions.csv").write_text("image,labels,p_a\nx.png,a,0.9\n")
    with pytest.raises(RunFolderError, match="p_b"):
        build_report(tmp_path / "run")
    with pytest.raises(ClassifyError, match="audio="):
        ReportConfig(audio="stream")


def test_cli(run, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["report", str(run["run"]), "-o", str(out), "--worst", "5", "--audio", "link", "--no-tsne"])
    assert rc == 0 and (out / "index.html").is_file()
    assert not (out / "audio").exists()  # linked, not copied
    hrefs = page_data(out / "index.html")["items"]["audio"].values()
    assert hrefs and all(h.startswith("../") for h in hrefs)
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "error: " in (err := capsys.readouterr().err) and "run folder" in err and "missing" in err


def test_dataset_section_uses_spec2img_audit_when_present(tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=3, n_clips=6, tiles=1)
    (paths["images"] / "audit.csv").write_text(
        "path,duration,samplerate,channels,peak,label\n"
        "a.wav,1.5,44100,1,0.9,class_01\nb.wav,3.0,44100,2,0.5,Long class name 00\n")
    (paths["images"] / "audit.html").write_text("<!DOCTYPE html><title>audit</title>")
    out = build_report(paths["run"], config=ReportConfig(tsne=False)).parent
    html = (out / "index.html").read_text()
    assert '<a href="audit.html"' in html and (out / "audit.html").is_file()
    assert "duration median (s)" in html and (out / "plots" / "classes.png").is_file()


def test_report_on_a_real_spec2img_folder(two_class_dir, tmp_path):
    """IMAGES_DIR from spec2img.convert (real manifest, spectrogram.json, spec2img_run.json) and a run
    folder shaped like fit's: thumbnails and players resolve from what spec2img records."""
    import numpy as np
    import pandas as pd

    from spec2img.config import from_preset
    from spec2img.convert import convert
    from spec2img.manifest import image_table, read_manifest

    images = tmp_path / "images"
    cfg = from_preset("default", sr=22050, n_mels=32, tile=0.5, tile_hop=0.5)
    convert(two_class_dir, images, cfg, jobs=1)
    table = image_table(read_manifest(images))
    classes = ["high", "low"]
    y = np.array([classes.index(labs[0]) for labs in table["labels"]])
    probs = np.where((np.arange(len(y)) % 3 == 0)[:, None], 1 - np.eye(2)[y], np.eye(2)[y]) * 0.8 + 0.1
    run = tmp_path / "run"
    run.mkdir()
    df = pd.DataFrame({"image": table["image"], "source": table["source"], "offset": table["offset"],
                       "labels": [";".join(v) for v in table["labels"]],
                       "pred": [classes[i] for i in probs.argmax(1)], "loss": -np.log(probs[np.arange(len(y)), y]),
                       "p_high": probs[:, 0], "p_low": probs[:, 1]})
    df.to_csv(run / "valid_predictions.csv", index=False)
    (run / "classes.json").write_text(json.dumps(classes))
    TrainConfig(images=str(images)).save(run)
    shutil.copyfile(images / "spectrogram.json", run / "spectrogram.json")
    index = build_report(run, config=ReportConfig(tsne=False))
    data = page_data(index)
    assert len(data["items"]["thumb"]) == len(df) and len(data["items"]["audio"]) == len(df)
    assert [w for w in data["items"]["win"]] == [[o, o + 0.5] for o in df["offset"]]  # tile windows
    assert df["offset"].max() > 0
    assert "no audio" not in index.read_text()
