"""``--engine ray``: conversion and prediction on a local 2-CPU Ray instance started by the tests
(loopback only, no dashboard; one instance for the module, shut down after). Starting Ray takes
10-40 s on a loaded 2-core machine, hence ``slow``."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spec2img import convert as conv
from spec2img.config import from_preset
from spec2img.engine_ray import connect
from tests.conftest import tone, write

pytestmark = pytest.mark.slow

CFG = from_preset("default", sr=22050, n_mels=64)  # "default" stays an alias of logmel


@pytest.fixture(scope="module")
def ray_local():
    session = connect(num_cpus=2)  # a local instance on 127.0.0.1, no dashboard (what the CLI starts)
    assert session.owned
    try:
        yield session.ray
    finally:
        session.close()


def _audio(root: Path, n: int = 24, seconds: float = 1.0) -> Path:
    for i in range(n):
        cls = ("low", "mid", "high")[i % 3]
        f = {"low": 200, "mid": 900, "high": 3000}[cls] * (1 + 0.03 * i)
        write(root / cls / f"{cls}{i:03d}.wav", tone(f, duration=seconds, noise=0.02, seed=i), 22050, "PCM_16")
    (root / "high" / "broken.wav").write_bytes(b"RIFF....garbage")  # one failed row, same text both ways
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and (p.suffix == ".png" or p.name in ("manifest.csv", "spectrogram.json"))}


def test_ray_conversion_is_byte_identical_to_two_processes_and_resumes(ray_local, tmp_path):
    audio = _audio(tmp_path / "audio")
    ref = conv.convert(audio, tmp_path / "J2", CFG, jobs=2)
    got = conv.convert(audio, tmp_path / "R", CFG, jobs=2, engine="ray")
    assert (got.converted, got.failed, got.images) == (ref.converted, ref.failed, ref.images) == (24, 1, 24)
    a, b = _files(tmp_path / "J2"), _files(tmp_path / "R")
    assert sorted(a) == sorted(b) and len(a) == 24 + 2
    assert [k for k in a if a[k] != b[k]] == []  # PNG bytes and manifest rows alike
    again = conv.convert(audio, tmp_path / "R", CFG, jobs=2, engine="ray")
    assert (again.converted, again.up_to_date, again.failed) == (0, 24, 1)


def test_ray_cli_reuses_the_running_instance(ray_local, tmp_path):
    from spec2img.cli import main

    audio = _audio(tmp_path / "audio", n=6)
    rc = main([str(audio), str(tmp_path / "out"), "--engine", "ray", "--preset", "default", "--sr", "22050", "--n-mels", "64", "-q"])
    assert rc == 1  # broken.wav failed, the rest converted
    df = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert (df["status"] == "ok").sum() == 6 and ray_local.is_initialized()


def _descendants(pid: int) -> list[int]:
    kids = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_killed_worker_loses_no_clip_and_rerun_completes(ray_local, tmp_path):
    """SIGKILL a Ray worker while it converts a batch: Ray reruns the batch, every clip lands."""
    audio = _audio(tmp_path / "audio", n=60, seconds=2.0)
    ref = conv.convert(audio, tmp_path / "J2", CFG, jobs=2)
    out = tmp_path / "R"
    killed: list[int] = []
    stop = threading.Event()

    def killer():
        while not stop.is_set() and not killed:
            if any(out.rglob("*.png")):  # mid-run: some images written, a task running
                for pid in _descendants(os.getpid()):  # only the Ray processes this test started
                    if _cmdline(pid).startswith("ray::run_batch"):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        break
            time.sleep(0.01)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        got = conv.convert(audio, out, CFG, jobs=2, engine="ray")
    finally:
        stop.set()
        t.join()
    assert killed, "no worker was running a conversion task to kill"
    assert (got.converted + got.up_to_date, got.failed) == (60, 1), [r["error"] for r in got.rows if r["error"]]
    assert _files(tmp_path / "J2") == _files(out)
    again = conv.convert(audio, out, CFG, jobs=2, engine="ray")
    assert (again.converted, again.up_to_date, again.failed) == (0, 60, 1)
    assert ref.images == got.images == 60


# ------------------------------------------------------------------------------ prediction
@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory):
    from classify.prediction.export import export_onnx
    from classify.testing import make_untrained_run

    run = make_untrained_run(tmp_path_factory.mktemp("run") / "run", arch="resnet18")
    export_onnx(run)
    return run


def _predict_audio(root: Path) -> Path:
    for i in range(20):  # 0.5-4 s: some files give one window, some several
        write(root / f"c{i:02d}.wav", tone(300 + 150 * i, sr=8000, duration=0.5 + 0.18 * i, noise=0.05, seed=i),
              8000, "PCM_16")
    (root / "c05b.wav").write_bytes(b"RIFF....garbage")  # a failed row in the middle of the input order
    return root


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    num = [c for c in a.columns if c.startswith(("prob_", "p_"))]
    pd.testing.assert_frame_equal(a.drop(columns=num), b.drop(columns=num))
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=0, atol=1e-5)


def test_ray_prediction_rows_equal_the_local_ones(ray_local, onnx_run, tmp_path):
    from classify.cli import main
    from classify.prediction.predict import predict
    from classify.prediction.predict_ray import predict_ray

    audio = _predict_audio(tmp_path / "audio")
    local = predict([onnx_run], [audio], backend="onnx", timeline=True)
    got = predict_ray([onnx_run], [audio], timeline=True, files_per_batch=3)
    assert (local.table["status"] == "failed").sum() == 1
    _same_table(local.table, got.table)
    _same_table(local.timeline, got.timeline)
    assert got.n_windows == local.n_windows > 21

    assert main(["predict", str(onnx_run), str(audio), "--onnx", "--out", str(tmp_path / "local.csv")]) == 1
    assert main(["predict", str(onnx_run), str(audio), "--engine", "ray", "--out", str(tmp_path / "ray.csv")]) == 1
    _same_table(pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "ray.csv"))


def test_ray_prediction_survives_a_killed_worker(ray_local, onnx_run, tmp_path):
    from classify.prediction.predict import predict
    from classify.prediction.predict_ray import predict_ray

    audio = _predict_audio(tmp_path / "audio")
    local = predict([onnx_run], [audio], backend="onnx")
    killed: list[int] = []
    stop = threading.Event()

    def killer():
        while not stop.is_set() and not killed:
            for pid in _descendants(os.getpid()):
                if _cmdline(pid).startswith("ray::predict_batch"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.005)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        got = predict_ray([onnx_run], [audio], files_per_batch=2)
    finally:
        stop.set()
        t.join()
    assert killed, "no worker was running a prediction task to kill"
    _same_table(local.table, got.table)
