"""Every command over the hostile corpus (tests/hostile.py): nothing escapes its folder, nothing
is dropped without a row, nothing hangs, every message is one line with a documented exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
from spec2img.errors import ConfigError, LabelsError, OutputError, Spec2ImgError
from spec2img.exitcodes import ExitCode
from spec2img.labels import folder_names
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
    want = {r.fname: csv_labels(r.label) for r in written.itertuples()}
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
    from classify.predict import Scorer

    def score(x):
        m = x.reshape(len(x), -1).mean(1, dtype=np.float64) / 255
        return np.stack([m, 1 - m], 1).astype(np.float32)
    return Scorer("fake", tuple(classes), CFG, 16, False, None, score)


def test_predict_gives_every_input_a_row_and_never_opens_a_fifo(corpus, tmp_path):
    from classify.predict import kaggle_table, predict, write_csv, write_kaggle

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
    df = pd.read_csv(tmp_path / "audit" / "audit.csv", keep_default_na=False)
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


# ------------------------------------------------------------------------------ locks and interruptions
def test_second_run_on_a_locked_folder_names_the_holder_or_waits(tmp_path, capsys):
    clips = tmp_path / "a"
    wav(clips / "c" / "x.wav")
    images = tmp_path / "img"
    images.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spec2img.lock import FolderLock\n"
         f"l = FolderLock({str(images)!r}).acquire(); print('held', flush=True); time.sleep(float(sys.argv[1]))",
         "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert spec2img_main([str(clips), str(images), *FLAGS]) == ExitCode.USAGE
        err = capsys.readouterr().err.strip()
        assert f"pid {holder.pid}" in err and "--wait" in err and len(err.splitlines()) == 1
        assert not (images / "manifest.csv").exists()
        assert spec2img_main([str(clips), str(images), *FLAGS, "--wait"]) == ExitCode.OK
        assert holder.poll() is not None, "--wait returned before the holder let go"
    finally:
        holder.kill()
        holder.wait()
    assert len(read_manifest(images)) == 1


def test_two_processes_on_one_folder_never_corrupt_it(tmp_path):
    clips = tmp_path / "a"
    for i in range(40):
        wav(clips / "c" / f"n{i:02d}.wav", tone(200 + 20 * i, seconds=1.0))
    images = tmp_path / "img"
    cmds = [[sys.executable, "-m", "spec2img.cli", str(clips), str(images), *FLAGS, *extra]
            for extra in ([], ["--hop-length", "128"])]
    procs = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code in (0, 2) for code, _ in outs), outs
    assert any(code == 0 for code, _ in outs)
    for code, err in outs:
        if code == 2:
            assert "in use by pid" in err
    df = read_manifest(images)  # complete and consistent with its spectrogram.json
    digest = SpectrogramConfig.load(images).digest()
    from spec2img.io import png_digest

    assert (df["status"] == "ok").all() and len(df) == 40
    for r in df.itertuples():
        assert all(png_digest(images / i) == digest for i in r.images)


def test_interrupted_rerender_with_new_settings_is_refused_until_rerun(tmp_path, monkeypatch):
    from spec2img import convert as conv

    clips = tmp_path / "a"
    for i in range(6):
        wav(clips / "c" / f"n{i}.wav", tone(300 + 40 * i))
    images = tmp_path / "img"
    convert(clips, images, CFG, jobs=1)
    read_manifest(images)  # complete
    new = CFG.replace(hop_length=128)
    real, n = conv.process, []

    def interrupted(job, cfg, images_dir):
        n.append(job)
        if len(n) > 2:
            raise KeyboardInterrupt
        return real(job, cfg, images_dir)
    monkeypatch.setattr(conv, "process", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(clips, images, new, jobs=1)
    with pytest.raises(Spec2ImgError, match="did not finish.*rerun `spec2img"):
        read_manifest(images)
    # a kill -9 between writing spectrogram.json and the manifest: the digest check catches it
    info = json.loads((images / "spec2img_run.json").read_text())
    (images / "spec2img_run.json").write_text(json.dumps({**info, "complete": True,
                                                          "digest": CFG.digest()}))
    with pytest.raises(Spec2ImgError, match="not the settings the images were made with"):
        read_manifest(images)
    monkeypatch.setattr(conv, "process", real)
    convert(clips, images, new, jobs=1)  # the rerun the message asks for
    df = read_manifest(images)
    from spec2img.io import png_digest

    assert all(png_digest(images / i) == new.digest() for r in df.itertuples() for i in r.images)


def test_label_folder_names_are_safe_unique_and_stable():
    names = folder_names(HOSTILE_LABELS + ["", "x\x00y", "a" * 1000, "CON", "x_da39a3ee"])
    assert len(set(names.values())) == len(names)
    assert len({unicodedata.normalize("NFKC", v).casefold() for v in names.values()}) == len(names)
    for label, name in names.items():
        assert "/" not in name and "\x00" not in name and name not in ("", ".", "..")
        assert not name.startswith((".", " ")) and len(name.encode()) <= 100
    assert folder_names(["dog", "cat"]) == {"dog": "dog", "cat": "cat"}  # plain labels keep their name
    assert folder_names(reversed(HOSTILE_LABELS)) == folder_names(HOSTILE_LABELS)
