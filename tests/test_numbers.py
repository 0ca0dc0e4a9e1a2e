"""Issue 23, "numbers that lie" and CLI traps: one label in two Unicode forms, a run folder with
another preset's spectrogram.json, abbreviated and ignored options, a labels CSV of a larger set,
the preset's numbers in --help, and where a clip's group (speaker, recording) comes from."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from conftest import tone, write
from spec2img.cli import main as spec2img_main
from spec2img.config import SpectrogramConfig, from_preset
from spec2img.convert import convert
from spec2img.errors import ConfigError, LabelsError
from spec2img.exitcodes import ExitCode
from spec2img.manifest import read_manifest

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
SMALL = dict(sr=8000, n_fft=256, hop_length=128, n_mels=32)
HEAD = ["--arch", "resnet18", "--no-pretrained", "--head-only", "--bs", "8", "-q"]


def small_cfg() -> SpectrogramConfig:
    return from_preset("logmel", **SMALL)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------ 4: NFC and NFD forms of one label
@pytest.mark.slow
def test_nfc_and_nfd_folders_are_one_class_and_cv_builds_its_report(tmp_path, capsys):
    from classify.cli import main as classify_main

    audio = tmp_path / "audio"
    for k, (label, freq) in enumerate(((NFC, 500), (NFD, 500), ("dog", 2500))):
        for i in range(6 if label == "dog" else 3):
            write(audio / label / f"c{k}_{i}.wav", tone(freq + 30 * i, sr=8000, noise=0.05, seed=10 * k + i),
                  8000, "PCM_16")
    assert len({p.name for p in audio.iterdir()}) == 3  # the file system keeps both forms apart
    convert(audio, tmp_path / "img", small_cfg(), jobs=1)
    assert {lab for labs in read_manifest(tmp_path / "img")["labels"] for lab in labs} == {NFC, "dog"}
    out = tmp_path / "cv"
    assert classify_main(["cv", str(tmp_path / "img"), "--out", str(out), "--folds", "2", *HEAD]) == 0
    assert json.loads((out / "fold_1" / "classes.json").read_text()) == [NFC, "dog"]
    assert (out / "report" / "index.html").is_file()
    assert "report not built" not in capsys.readouterr().err


def test_a_manifest_written_with_both_forms_loads_as_one_class(tmp_path):
    import pandas as pd

    from classify.data.imageset import load_image_set
    from imageset import make_image_set

    images = make_image_set(tmp_path / "img", n_classes=2, per_class=4)
    m = pd.read_csv(images / "manifest.csv", dtype=str, keep_default_na=False)
    m["labels"] = [NFC if i % 2 else NFD if lab == "class0" else lab for i, lab in enumerate(m["labels"])]
    m.to_csv(images / "manifest.csv", index=False)
    ds = load_image_set(images)
    assert ds.classes == ["class1", NFC] or sorted(ds.classes) == sorted(["class1", NFC])
    assert len(ds.classes) == 2


def test_report_never_makes_identifiers_of_labels(tmp_path):
    """Labels that are one Python identifier after NFKC ('ﬁle' and 'file') or keywords: the
    suspects table and every HTML table still build (pandas itertuples raised SyntaxError)."""
    from classify.report import build_report
    from classify.report.synthetic import write_synthetic_run

    run = write_synthetic_run(tmp_path / "cv", classes=["\ufb01le", "file", "class", "dog"], n_clips=24,
                              tiles=1, folds=2, flipped=4)["run"]
    html = build_report(run).read_text()
    assert "\ufb01le" in html and "suspect" in html.lower()


# ------------------------------------------------------------------ 5: another preset's spectrogram.json
@pytest.mark.parametrize("change", [{"feature": "mfcc", "n_mfcc": 20}, {"hop_length": 64}, {"top_db": 60.0}])
def test_a_run_folder_with_other_spectrogram_settings_is_refused(tmp_path, capsys, change):
    from classify.cli import main as classify_main
    from classify.testing import SMALL_SPEC, make_untrained_run

    run = make_untrained_run(tmp_path / "run")
    SpectrogramConfig(**{**SMALL_SPEC, **change}).save(run)  # as if copied from another image folder
    clip = write(tmp_path / "x.wav", tone(440, sr=8000), 8000)
    assert classify_main(["predict", str(run), str(clip), "--out", str(tmp_path / "p.csv")]) == ExitCode.USAGE
    err = one_error_line(capsys)
    assert "spectrogram.json" in err and "trained on" in err
    assert not (tmp_path / "p.csv").exists()


def test_run_folders_record_the_digest_they_were_trained_on(tmp_path):
    from classify.runfolder import read_info
    from classify.testing import make_untrained_run

    info = read_info(make_untrained_run(tmp_path / "run"))
    assert info.model.spectrogram_digest == info.spectrogram.digest()
    old = make_untrained_run(tmp_path / "old", model_info={"spectrogram_digest": None})  # before it was recorded
    assert read_info(old).model.spectrogram_digest is None


# ------------------------------------------------------------------ 12: no abbreviations; ignored settings
@pytest.mark.parametrize("argv", [["fit", "IMG", "--epoch", "3"], ["cv", "IMG", "--fold", "3"],
                                  ["predict", "RUN", "x.wav", "--ou", "p.csv"]])
def test_classify_refuses_abbreviated_options(argv, capsys):
    from classify.cli import main as classify_main

    with pytest.raises(SystemExit) as exc:
        classify_main(argv)
    assert exc.value.code == ExitCode.USAGE and "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["A", "B", "--hop", "64"], ["audit", "A", "--lab", "x.csv"],
                                  ["synth", "O", "--per", "3"]])
def test_spec2img_refuses_abbreviated_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        spec2img_main(argv)
    assert exc.value.code == ExitCode.USAGE and "unrecognized arguments" in capsys.readouterr().err


def test_ignored_settings_come_from_the_one_table():
    from classify.config import AugmentConfig, TrainConfig, ignored_settings

    head = TrainConfig(images="x", head_only=True, epochs=3, lr=1e-3, augment=AugmentConfig(mixup=0.0))
    assert ignored_settings(head) == ["--mixup/--time-masks/--freq-masks/--mask-frac/--no-roll/--mixstyle/--stretch/"
                                      "--no-augment",
                                      "--epochs", "--lr"]
    assert ignored_settings(TrainConfig(images="x", head_only=False, head_c=0.1)) == ["--head-c"]
    assert ignored_settings(TrainConfig(images="x", head_only=True)) == []
    assert ignored_settings(TrainConfig(images="x", head_only=True, freeze_bn=True, lr_groups=6)) == [
        "--freeze-bn", "--lr-groups"]
    assert ignored_settings(TrainConfig(images="x", epochs=3)) == []  # mode not decided yet


@pytest.mark.slow
def test_head_only_fit_names_the_settings_it_ignores(tiny_images, tmp_path, capsys):
    from classify.cli import main as classify_main

    assert classify_main(["fit", str(tiny_images), "--out", str(tmp_path / "r"), *HEAD, "--epochs", "3"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "ignores" in line]
    assert lines == ["--head-only ignores --epochs (--fine-tune only); pass --fine-tune to use it"]


# ------------------------------------------------------------------ 13: a labels CSV of a larger set
def test_a_csv_listing_absent_files_is_refused_or_skipped(two_class_dir, tmp_path, capsys):
    rows = [f"{p.relative_to(two_class_dir).as_posix()},{p.parent.name}" for p in sorted(two_class_dir.rglob("*.wav"))]
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n" + "\n".join(rows + [f"gone{i}.wav,low" for i in range(7)]) + "\n")
    argv = [str(two_class_dir), str(tmp_path / "img"), "--labels", str(csv), "--file-col", "file",
            "--label-col", "label", "-j", "1", "--preset", "logmel", "--sr", "8000", "--n-fft", "256",
            "--hop-length", "128", "--n-mels", "32"]
    assert spec2img_main(argv) == ExitCode.USAGE
    assert "--missing skip" in one_error_line(capsys)
    assert spec2img_main([*argv, "--missing", "skip"]) == ExitCode.OK
    warned = [line for line in capsys.readouterr().err.splitlines() if "--missing skip" in line]
    assert len(warned) == 1 and "7 listed file(s)" in warned[0] and "gone0.wav" in warned[0]
    assert "gone6.wav" not in warned[0]  # the first names, not all of them
    assert (read_manifest(tmp_path / "img")["status"] == "ok").sum() == 6


# ------------------------------------------------------------------ 14: the preset's numbers in --help; --top-db
def test_help_shows_the_default_presets_numbers(capsys):
    with pytest.raises(SystemExit):
        spec2img_main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    d = from_preset()
    assert f"default {d.sr};" in out and f"default {d.n_fft};" in out and f"default {d.hop_length};" in out
    assert "comes from --preset" in out


def test_top_db_is_refused_where_the_preset_does_not_use_it(tmp_path, capsys):
    with pytest.raises(ConfigError, match="top_db=60 has no effect on preset 'efficientat'"):
        from_preset("efficientat", top_db=60)
    assert from_preset("logmel", top_db=60).vmin == -60  # a dB preset draws it
    assert spec2img_main([str(tmp_path), str(tmp_path / "img"), "--top-db", "60"]) == ExitCode.USAGE
    assert "--preset logmel" in one_error_line(capsys)


# ------------------------------------------------------------------ 10: groups from a column or a name
def _speaker_set(root: Path) -> Path:
    for digit, freq in ((0, 400), (1, 1800)):
        for speaker in ("jackson", "theo", "nicolas"):
            for take in range(2):
                write(root / f"{digit}_{speaker}_{take}.wav", tone(freq, sr=8000, noise=0.02, seed=take), 8000)
    return root


def test_group_from_name_and_group_col_fill_the_manifest(tmp_path, capsys):
    audio = _speaker_set(tmp_path / "audio")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,spk\n" + "".join(f"{p.name},{p.name[0]},{p.name.split('_')[1].upper()}\n"
                                                   for p in sorted(audio.glob("*.wav"))))
    cfg = small_cfg()
    base = dict(labels_csv=csv, file_col="file", label_col="label", jobs=1)
    convert(audio, tmp_path / "a", cfg, **base, group_regex=r"^\d+_([a-z]+)_")
    m = read_manifest(tmp_path / "a")
    assert dict(zip(m["source"], m["group"]))["1_theo_0.wav"] == "theo" and m["group"].nunique() == 3
    convert(audio, tmp_path / "b", cfg, **base, group_col="spk")
    assert set(read_manifest(tmp_path / "b")["group"]) == {"JACKSON", "THEO", "NICOLAS"}
    convert(audio, tmp_path / "c", cfg, **base)  # without either: each file is its own recording
    assert read_manifest(tmp_path / "c")["group"].nunique() == 12
    with pytest.raises(LabelsError, match="matches none of the 12 file names"):
        convert(audio, tmp_path / "d", cfg, **base, group_regex=r"^speaker(\d+)")
    with pytest.raises(LabelsError, match="--group-col 'nope' is not a column"):
        convert(audio, tmp_path / "e", cfg, **base, group_col="nope")
    argv = [str(audio), str(tmp_path / "f"), "--labels", str(csv), "--file-col", "file", "--label-col", "label",
            "--group-from-name", "([", "-j", "1"]
    assert spec2img_main(argv) == ExitCode.USAGE and "not a regular expression" in one_error_line(capsys)


# ------------------------------------------------------------------ 8: degenerate predefined folds
def _rewrite_manifest(images: Path, change) -> None:
    import pandas as pd

    m = pd.read_csv(images / "manifest.csv", dtype=str, keep_default_na=False)
    change(m)
    m.to_csv(images / "manifest.csv", index=False)


@pytest.mark.slow
def test_unbalanced_predefined_folds_say_how_many_clips_the_headline_covers(tmp_path, capsys):
    """ESC-50's fold column on a subset: one fold holds most clips, and a class has no training clips
    there. The headline says 'ONLY n of N', the log suggests --folds and numbers folds as named."""
    from classify.cli import main as classify_main
    from imageset import make_image_set

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=6)

    def degenerate(m):  # class0 clips 0-1 in fold 1, class1 clips 0-1 in fold 2, all the rest in fold 4
        first = m["source"].str.extract(r"class(\d)/class\d_(\d+)").astype(int)
        m["fold"] = [str(c + 1) if c < 2 and i < 2 else "4" for c, i in zip(first[0], first[1])]

    _rewrite_manifest(images, degenerate)
    out = tmp_path / "cv"
    assert classify_main(["cv", str(images), "--out", str(out), "--predefined-folds",
                          *[a for a in HEAD if a != "-q"]]) == 0
    err = capsys.readouterr().err
    res = json.loads((out / "cv_metrics.json").read_text())
    cover = res["coverage"]
    assert (cover["n_scored"], cover["n_clips"], cover["partial"]) == (12, 18, True)
    assert res["headline"]["computed_on"].startswith("ONLY 12 of 18 clips")
    assert "fold 4 (3 of 3) -> fold_4" in err and "fold 1 of" not in err
    warning = [line for line in err.splitlines() if "covers only 12 of 18" in line]
    assert len(warning) == 1 and "--folds 5" in warning[0] and "fold sizes" not in warning[0]
    assert "6 whose class was not trained in their fold" in warning[0]
    html = (out / "report" / "index.html").read_text()
    assert html.index("Read this first") < html.index('id="summary"')
    assert "other (training) clips" not in html and "clips not scored" in html


def test_coverage_rule():
    import numpy as np

    from classify.training.cv import coverage

    folds = np.array([1] * 3 + [2] * 3 + [3] * 200)
    c = coverage(38, 206, folds, n_unverified=0, flagged=168, predefined=True)
    assert c["partial"] and c["prefix"].startswith("ONLY 38 of 206") and "1: 3, 2: 3, 3: 200" in c["warning"]
    assert not coverage(190, 206, folds, n_unverified=0, flagged=16, predefined=True)["partial"]  # 92%


# ------------------------------------------------------------------ 9: unverified clips get ranked
@pytest.mark.slow
def test_unverified_clips_get_out_of_fold_predictions_and_are_ranked(tmp_path):
    """Freesound 2018 layout: manually_verified = 0 marks the noisy labels. Flip 6 of the 9
    unverified clips' labels: suspect_labels.csv must rank them; the headline leaves them out, saying so."""
    import pandas as pd

    from classify.cli import main as classify_main
    from imageset import make_image_set

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=12, groups_per_class=12, verified=True)
    flipped = {f"class{c}/class{c}_{i:03d}.wav": f"class{(c + 1) % 3}" for c in range(3) for i in (3, 7)}

    def flip(m):
        m["labels"] = [flipped.get(s, lab) for s, lab in zip(m["source"], m["labels"])]

    _rewrite_manifest(images, flip)
    out = tmp_path / "cv"
    assert classify_main(["cv", str(images), "--out", str(out), "--folds", "4", "--crop-seconds", "full",
                          *HEAD]) == 0
    oof = pd.read_csv(out / "oof_predictions.csv", keep_default_na=False)
    unscored = pd.read_csv(out / "oof_unscored_predictions.csv", keep_default_na=False)
    unverified = {f"class{c}/class{c}_{i:03d}.wav" for c in range(3) for i in (3, 7, 11)}
    assert set(unscored["source"]) == unverified and not set(oof["source"]) & unverified
    table = pd.read_csv(out / "suspect_labels.csv", keep_default_na=False)
    found = set(table["file"]) & set(flipped)
    assert len(found) >= 4, table.head(10)
    computed_on = json.loads((out / "cv_metrics.json").read_text())["headline"]["computed_on"]
    assert "9 unverified clip(s) have out-of-fold predictions but are not scored" in computed_on
    for k in range(1, 5):  # fold k's model never trained on fold k's unverified clips
        fold = pd.read_csv(out / f"fold_{k}" / "valid_predictions.csv", keep_default_na=False)
        assert not set(fold["source"]) & unverified


def test_audit_takes_missing_skip_too(two_class_dir, tmp_path, capsys):
    csv = tmp_path / "labels.csv"
    rows = [f"{p.relative_to(two_class_dir).as_posix()},{p.parent.name}" for p in sorted(two_class_dir.rglob("*.wav"))]
    csv.write_text("file,label\n" + "\n".join(rows + ["gone.wav,low"]) + "\n")
    argv = ["audit", str(two_class_dir), "--labels", str(csv), "--file-col", "file", "--label-col", "label",
            "--out", str(tmp_path / "audit"), "-j", "1"]
    assert spec2img_main(argv) == ExitCode.USAGE and "--missing skip" in one_error_line(capsys)
    assert spec2img_main([*argv, "--missing", "skip"]) == ExitCode.OK
