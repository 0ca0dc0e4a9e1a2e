"""Two runs on one folder, interrupted re-renders: the folder stays consistent or is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from hostile import tone, wav
from spec2img.cli import main as spec2img_main
from spec2img.config import SpectrogramConfig, from_preset
from spec2img.convert import convert
from spec2img.errors import Spec2ImgError
from spec2img.exitcodes import ExitCode
from spec2img.io import png_digest
from spec2img.manifest import read_manifest

CFG = from_preset("logmel", sr=8000, n_fft=256, hop_length=64, n_mels=32)
FLAGS = ["--preset", "logmel", "--sr", "8000", "--n-fft", "256", "--hop-length", "64", "--n-mels", "32",
         "-j", "1", "-q"]


def test_second_run_on_a_locked_folder_names_the_holder_or_waits(tmp_path, capsys):
    clips = tmp_path / "a"
    wav(clips / "c" / "x.wav")
    images = tmp_path / "img"
    images.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spec2img.lock import FolderLock\n"
         f"l = FolderLock({str(images)!r}).acquire(); print('held', flush=True); time.sleep(float(sys.argv[1]))\n"
         "t = time.time(); l.release(); print('released', t, flush=True); time.sleep(60)",
         "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert spec2img_main([str(clips), str(images), *FLAGS]) == ExitCode.USAGE
        err = capsys.readouterr().err.strip()
        assert f"pid {holder.pid}" in err and "--wait" in err and len(err.splitlines()) == 1
        assert not (images / "manifest.csv").exists()
        assert spec2img_main([str(clips), str(images), *FLAGS, "--wait"]) == ExitCode.OK
        done = time.time()
        word, released = holder.stdout.readline().split()
        assert word == "released" and float(released) <= done, "--wait returned before the holder let go"
    finally:
        holder.kill()
        holder.wait()
    assert len(read_manifest(images)) == 1


@pytest.mark.slow
def test_two_processes_on_one_folder_never_corrupt_it(tmp_path):
    clips = tmp_path / "a"
    for i in range(30):
        wav(clips / "c" / f"n{i:02d}.wav", tone(200 + 20 * i, seconds=0.5))
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
    assert (df["status"] == "ok").all() and len(df) == 30
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
    assert all(png_digest(images / i) == new.digest() for r in df.itertuples() for i in r.images)
