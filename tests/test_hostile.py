"""Every command over the hostile corpus (tests/hostile.py): nothing escapes its folder, nothing
is dropped without a row, nothing hangs, every message is one line with a documented exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hostile import ABSURD_SETTINGS, HOSTILE_LABELS, make_corpus, sparse_wav, tone, wav
from spec2img import audio
from spec2img.cli import main as spec2img_main
from spec2img.cli import run_main
from spec2img.config import SpectrogramConfig, from_preset
from spec2img.convert import convert
from spec2img.errors import ConfigError, LabelsError, Spec2ImgError
from spec2img.exitcodes import ExitCode
from spec2img.labels import folder_names, normalize_labels
from spec2img.manifest import read_manifest
from spec2img.paths import walk_audio

CFG = from_preset("logmel", sr=8000, n_fft=256, hop_length=64, n_mels=32)
FLAGS = ["--preset", "logmel", "--sr", "8000", "--n-fft", "256", "--hop-length", "64", "--n-mels", "32",
         "-j", "1", "-q"]


@contextmanager
def deadline(seconds: int = 20):
    """Fail instead of hanging (a FIFO opened for reading blocks forever)."""
    def boom(*_):
        raise TimeoutError(f"hung for {seconds} s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def csv_labels(raw: str) -> tuple[str, ...]:
    """What the labels CSV reader makes of a cell (comma-separated, stripped)."""
    return tuple(s.strip() for s in raw.split(",") if s.strip())


# ------------------------------------------------------------------------------ the folder walk
def test_walk_gives_every_audio_looking_entry_a_status(corpus):
    with deadline():
        got = {e.rel: e.status for e in walk_audio(corpus.audio)}
    assert got == corpus.expect
    assert all(e.error for e in walk_audio(corpus.audio) if not e.ok)
    followed = {e.rel: e.status for e in walk_audio(corpus.audio, follow_symlinks=True)}
    assert followed["link_out.wav"] == followed["outdir/secret.wav"] == "ok"
    assert followed["passwd.wav"] == "ok"  # only when asked: --follow-symlinks


# ------------------------------------------------------------------------------ spec2img convert
def test_labels_never_decide_a_path_and_round_trip(corpus):
    before = tree(corpus.root)
    images = corpus.root / "out" / "x" / "y"
    with deadline():
        summary = convert(corpus.audio, images, CFG, labels_csv=corpus.labels_csv, jobs=1)
    made = tree(corpus.root) - before
    assert all(p.startswith("out") for p in made), "something was written outside IMAGES_DIR"
    pngs = [p for p in images.rglob("*.png")]
    assert pngs and all(images.resolve() in p.resolve().parents for p in pngs)
    df = read_manifest(images)
    written = pd.read_csv(corpus.labels_csv, dtype=str, keep_default_na=False)
    # labels are NFC-normalised where they are read: the composed and decomposed café are one label
    want = {r.fname: normalize_labels(csv_labels(r.label)) for r in written.itertuples()}
    ok = df[df["status"] == "ok"]
    got = {r.source: tuple(r.labels) for r in ok.itertuples()}
    assert got == {k: v for k, v in want.items() if k not in ("empty.wav", "junk.wav")}
    # one folder per distinct label, distinct even ignoring case and unicode normalisation
    folder_of = {tuple(r.labels): {Path(i).parent.as_posix() for i in r.images} for r in ok.itertuples()}
    folders = [f for fs in folder_of.values() for f in fs]
    assert all(len(fs) == 1 for fs in folder_of.values())
    assert len({unicodedata.normalize("NFKC", f).casefold() for f in folders}) == len(folder_of)
    assert summary.failed >= 2 and (df["status"] != "ok").sum() == summary.failed + summary.skipped


def test_every_input_has_a_manifest_row_and_links_are_refused(corpus):
    with deadline():
        convert(corpus.audio, corpus.root / "img", CFG, jobs=1)
    df = read_manifest(corpus.root / "img")
    status = dict(zip(df["source"], df["status"]))
    want = {**corpus.expect, "empty.wav": "failed", "junk.wav": "failed"}
    assert status == want
    errors = dict(zip(df["source"], df["error"]))
    assert "--follow-symlinks" in errors["link_out.wav"] and "--follow-symlinks" in errors["passwd.wav"]
    assert "FIFO" in errors.get("fifo.wav", "FIFO") and "libsndfile cannot decode" in errors["song.m4a"]
    assert "empty file" in errors["empty.wav"]
    # the same clip reached through a link inside the folder renders the same image
    imgs = dict(zip(df["source"], df["images"]))
    a, b = (corpus.root / "img" / imgs[k][0] for k in ("plain.wav", "link_in.wav"))
    assert a != b and a.read_bytes() == b.read_bytes()
    # names that differ only by case / normalisation got different images
    names = {imgs[k][0] for k in ("Case.wav", "case.wav", f"{unicodedata.normalize('NFC', 'café')}.wav",
                                  f"{unicodedata.normalize('NFD', 'café')}.wav")}
    assert len({unicodedata.normalize("NFKC", n).casefold() for n in names}) == 4
    with deadline():
        convert(corpus.audio, corpus.root / "img2", CFG, jobs=1, follow_symlinks=True)
    status2 = dict(zip(*(read_manifest(corpus.root / "img2")[c] for c in ("source", "status"))))
    assert status2["link_out.wav"] == "ok" and status2["outdir/secret.wav"] == "ok"


def test_antiphase_stereo_falls_back_to_one_channel(tmp_path, caplog):
    path = wav(tmp_path / "anti.wav", np.stack([tone(), -tone()], axis=1))
    y, _ = audio.load(path)
    assert np.abs(y).max() > 0.25  # not the cancelled (silent) mix
    assert "antiphase" in caplog.text
    wav(tmp_path / "normal.wav", np.stack([tone(), 0.5 * tone()], axis=1))
    y2, _ = audio.load(tmp_path / "normal.wav")
    assert np.allclose(y2, 0.75 * tone(), atol=1e-4)  # a normal stereo file is still mixed


def test_a_2gb_wav_without_tile_is_refused_by_its_header(tmp_path):
    clips = tmp_path / "a"
    clips.mkdir()
    sparse_wav(clips / "huge.wav", gigabytes=2.0)
    wav(clips / "small.wav")
    summary = convert(clips, tmp_path / "img", CFG, jobs=1)
    row = {r["source"]: r for r in summary.rows}["huge.wav"]
    assert row["status"] == "failed" and "--tile" in row["error"] and "--duration" in row["error"]
    assert summary.converted == 1


# ------------------------------------------------------------------------------ special files
def test_fifos_are_never_opened(corpus, tmp_path):
    if corpus.fifo is None:
        pytest.skip("no mkfifo here")
    with deadline():
        with pytest.raises(LabelsError, match="FIFO"):
            convert(corpus.audio, tmp_path / "img", CFG, labels_csv=corpus.fifo, jobs=1)
        with pytest.raises(Spec2ImgError, match="FIFO"):
            audio.probe(corpus.fifo)
        with pytest.raises(ConfigError, match="FIFO"):
            os.symlink(corpus.fifo, tmp_path / "spectrogram.json")
            SpectrogramConfig.load(tmp_path)


def _fake_scorer(classes=("a", "b;c")):
    from classify.prediction.scorer import Scorer

    def score(x):
        m = x.reshape(len(x), -1).mean(1, dtype=np.float64) / 255
        return np.stack([m, 1 - m], 1).astype(np.float32)
    return Scorer("fake", tuple(classes), CFG, 16, False, None, score)


def test_predict_gives_every_input_a_row_and_never_opens_a_fifo(corpus, tmp_path):
    from classify.prediction.predict import predict
    from classify.prediction.results import kaggle_table, write_csv, write_kaggle

    explicit = [corpus.audio / "plain.wav", corpus.audio / "dangling.wav", tmp_path / "nope.wav"]
    explicit += [corpus.fifo] if corpus.fifo else []
    with deadline():
        res = predict(None, [corpus.audio, *explicit], scorers=[_fake_scorer()])
    walked = len(walk_audio(corpus.audio))
    assert len(res.table) == walked + len(explicit)
    assert len(kaggle_table(res)) == len(res.table)
    by_file = dict(zip(res.table["file"], res.table["status"]))
    assert by_file[str(corpus.audio / "plain.wav")] == "ok"
    assert by_file[str(tmp_path / "nope.wav")] == "failed"
    if corpus.fifo:
        assert by_file[str(corpus.fifo)] != "ok"
    assert by_file[str(corpus.audio / "link_out.wav")] == "skipped"
    out = write_csv(res, tmp_path / "p.csv")  # a non-UTF-8 name and a newline still make a valid CSV
    back = pd.read_csv(out, keep_default_na=False)
    assert len(back) == len(res.table) and "bad\\xff.wav" in " ".join(back["file"])
    write_kaggle(res, tmp_path / "k.csv")
    assert res.failures  # -> exit 1


def test_audit_rows_and_exit_code(corpus, tmp_path, capsys):
    with deadline():
        code = spec2img_main(["audit", str(corpus.audio), "--out", str(tmp_path / "audit"), "-j", "1", "-q"])
    assert code == ExitCode.INPUTS_FAILED
    from spec2img.io import plain_table  # cells a spreadsheet would run carry a leading quote

    df = plain_table(pd.read_csv(tmp_path / "audit" / "audit.csv", keep_default_na=False))
    status = dict(zip(df["path"], df["status"]))
    assert status == {**corpus.expect, "empty.wav": "failed", "junk.wav": "failed"}


# ------------------------------------------------------------------------------ settings from disk
@pytest.mark.parametrize("key,value", ABSURD_SETTINGS)
def test_absurd_spectrogram_json_is_refused_naming_file_and_key(tmp_path, key, value):
    data = CFG.to_dict()
    data[key] = value
    (tmp_path / "spectrogram.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        SpectrogramConfig.load(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "spectrogram.json") in msg and key in msg and "\n" not in msg


# ------------------------------------------------------------------------------ output folder
def test_images_dir_that_is_a_file_and_exit_codes(tmp_path, capsys):
    clips = tmp_path / "a"
    wav(clips / "x.wav")
    (tmp_path / "file").write_text("")
    assert spec2img_main([str(clips), str(tmp_path / "file"), *FLAGS]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "a file, not a folder" in err and len(err.splitlines()) == 1
    assert spec2img_main([str(clips), str(tmp_path / "file" / "sub"), *FLAGS]) == ExitCode.USAGE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_run_main_maps_every_outcome_to_the_table(capsys):
    import errno

    def raise_(exc):
        def f():
            raise exc
        return f
    assert run_main(lambda: None) == ExitCode.OK == 0
    assert run_main(lambda: ExitCode.INPUTS_FAILED) == 1
    assert run_main(raise_(Spec2ImgError("bad"))) == ExitCode.USAGE == 2
    assert run_main(raise_(OSError(errno.ENOSPC, "No space left", "/x/y.png"))) == 2
    assert "disk full" in capsys.readouterr().err
    assert run_main(raise_(ZeroDivisionError("bug"))) == ExitCode.INTERNAL == 3
    assert "Traceback" in capsys.readouterr().err
    assert run_main(raise_(KeyboardInterrupt())) == ExitCode.INTERRUPTED == 130


def test_disk_full_stops_with_one_line_and_keeps_the_manifest(tmp_path, monkeypatch, capsys):
    import errno

    from spec2img import convert as conv

    clips = tmp_path / "a"
    for i in range(6):
        wav(clips / "c" / f"n{i}.wav", tone(300 + 40 * i))
    real, calls = conv.io.write_atomic, []

    def full(path, data):
        calls.append(path)
        if len(calls) > 3 and path.suffix == ".png":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
    monkeypatch.setattr(conv.io, "write_atomic", full)
    code = spec2img_main([str(clips), str(tmp_path / "img"), *FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.USAGE and len(err) == 1
    assert "disk full" in err[0] and "MB" in err[0] and "rerun" in err[0]
    df = read_manifest(tmp_path / "img", require_complete=False)
    assert len(df) == 6 and (df["status"] == "ok").sum() >= 1 and (df["status"] == "skipped").sum() >= 1
    for r in df[df["status"] == "ok"].itertuples():
        assert all((tmp_path / "img" / i).is_file() for i in r.images)
    with pytest.raises(Spec2ImgError, match="did not finish"):
        read_manifest(tmp_path / "img")


def test_disk_full_on_a_real_small_tmpfs(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("mount not permitted here")
    try:
        clips = tmp_path / "a"
        for i in range(12):
            wav(clips / f"n{i:02d}.wav", tone(300 + 40 * i, seconds=2.0) + 0.01 * np.random.default_rng(i)
                .standard_normal(16000).astype(np.float32))
        code = spec2img_main([str(clips), str(mnt / "img"), *FLAGS])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == ExitCode.USAGE and len(err) == 1 and "disk full" in err[0], err
        assert not list(mnt.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_unreadable_audio_and_read_only_images_dir_are_one_line_each(tmp_path, monkeypatch, capsys):
    from spec2img import paths

    clips = tmp_path / "a"
    wav(clips / "c" / "ok.wav")
    locked = wav(clips / "c" / "locked.wav")
    real = os.access
    monkeypatch.setattr(paths.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    summary = convert(clips, tmp_path / "img", CFG, jobs=1)
    row = {r["source"]: r for r in summary.rows}["c/locked.wav"]
    assert row["status"] == "failed" and "permission denied" in row["error"]
    monkeypatch.undo()
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("mount not permitted here")
    capsys.readouterr()  # drop what logging said before main() set it up for this test
    try:
        assert spec2img_main([str(clips), str(mnt / "img"), *FLAGS]) == ExitCode.USAGE
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "read-only" in err, err
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_label_folder_names_are_safe_unique_and_stable():
    names = folder_names(HOSTILE_LABELS + ["", "x\x00y", "a" * 1000, "CON", "x_da39a3ee"])
    assert len(set(names.values())) == len(names)
    assert len({unicodedata.normalize("NFKC", v).casefold() for v in names.values()}) == len(names)
    for label, name in names.items():
        assert "/" not in name and "\x00" not in name and name not in ("", ".", "..")
        assert not name.startswith((".", " ")) and len(name.encode()) <= 100
    assert folder_names(["dog", "cat"]) == {"dog": "dog", "cat": "cat"}  # plain labels keep their name
    assert folder_names(reversed(HOSTILE_LABELS)) == folder_names(HOSTILE_LABELS)


# ------------------------------------------------------------------------------ run folders
RUN_FAULTS = [
    ("classes.json", lambda c, m: c[:-1], "2 class names but model.json says the model has 3 outputs"),
    ("classes.json", lambda c, m: c + ["extra"], "4 class names"),
    ("classes.json", lambda c, m: {"a": 1}, "list of class names"),
    ("classes.json", lambda c, m: [1, 2, 3], "list of class names"),
    ("classes.json", lambda c, m: ["a", "a", "b"], "listed twice"),
    ("model.json", lambda c, m: {**m, "crop_width": 0}, "crop_width=0 must be a positive integer"),
    ("model.json", lambda c, m: {**m, "n_classes": "3"}, "n_classes='3'"),
    ("model.json", lambda c, m: {**m, "in_channels": 3}, "in_channels=3 but spectrogram.json"),
    ("model.json", lambda c, m: {**m, "threshold": 7}, "threshold=7"),
    ("model.json", lambda c, m: {k: v for k, v in m.items() if k != "arch"}, "missing key(s) arch"),
    ("model.json", lambda c, m: [m], "not a JSON object"),
    ("spectrogram.json", None, "n_fft=1000000000"),
]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from classify.testing import make_untrained_run

    return make_untrained_run(tmp_path_factory.mktemp("run") / "run", arch="resnet18")


@pytest.mark.parametrize("name,change,match", RUN_FAULTS)
def test_run_folder_that_disagrees_with_itself_is_one_line_exit_2(tmp_path, capsys, good_run, name, change,
                                                                  match):
    import shutil

    from classify.cli import main as classify_main

    run = Path(shutil.copytree(good_run, tmp_path / "run"))
    classes = json.loads((run / "classes.json").read_text())
    model = json.loads((run / "model.json").read_text())
    path = run / name
    if name == "spectrogram.json":
        spec = json.loads(path.read_text())
        path.write_text(json.dumps({**spec, "n_fft": 10**9}))
    else:
        path.write_text(json.dumps(change(classes, model)))
    clip = wav(tmp_path / "x.wav")
    assert classify_main(["predict", str(run), str(clip), "--out", str(tmp_path / "p.csv")]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and match in err, err
    assert str(path) in err or name in err
    assert not (tmp_path / "p.csv").exists()


def test_tag_lists_what_it_skipped_and_never_opens_a_fifo(corpus):
    import torch

    from classify.models.backbones.efficientat import EfficientATMN
    from classify.prediction.tag import tag

    torch.manual_seed(0)
    inputs = [corpus.audio / "plain.wav", corpus.audio / "junk.wav", corpus.audio / "dangling.wav"]
    inputs += [corpus.fifo] if corpus.fifo else []
    with deadline():
        df = tag(inputs, top_k=2, window=1.0, model=EfficientATMN())
    assert set(df["source"]) == {str(corpus.audio / "plain.wav")}
    assert [p for p, _ in df.attrs["skipped"]] == [str(p) for p in inputs[1:]]  # -> exit 1


def test_a_full_disk_under_audit_or_any_atomic_write_is_one_line(tmp_path, monkeypatch, capsys):
    import errno

    from spec2img import io as sio

    class Full:
        def __init__(self, fd, mode):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")  # as the kernel says it: no file name
    monkeypatch.setattr(sio.os, "fdopen", Full)
    with pytest.raises(OSError) as err:
        sio.write_atomic(tmp_path / "out.csv", b"x")
    assert err.value.filename == str(tmp_path / "out.csv") and not list(tmp_path.iterdir())
    clips = tmp_path / "a"
    wav(clips / "x.wav")
    code = spec2img_main(["audit", str(clips), "--out", str(tmp_path / "audit"), "-j", "1", "-q"])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.USAGE and len(err_lines) == 1 and "disk full" in err_lines[0]
    assert "audit.csv" in err_lines[0]
