"""Issue 23's faults that lose data or hang, over the hostile corpus (tests/hostile.py): a worker
killed with kill -9, outputs that are special files, a full disk under fit / export / report and
the lock, a hostile model.pt, spreadsheet formulas in names and labels, and predict's default
output. Every outcome is a row or one line with a documented exit code, never a traceback."""

from __future__ import annotations

import csv
import errno
import io
import json
import multiprocessing
import os
import shutil
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hostile import FORMULA_FILES, FORMULAS, make_corpus, wav
from spec2img import engine_local
from spec2img import io as sio
from spec2img.cli import main as spec2img_main
from spec2img.errors import OutputError
from spec2img.exitcodes import ExitCode
from spec2img.io import write_atomic
from spec2img.manifest import read_manifest
from test_hostile import CFG, FLAGS, _fake_scorer, deadline, tree


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: a cell starting so is a formula


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert "Traceback" not in err[0]
    return err[0]


# ------------------------------------------------------------------------------ 1. a dead worker
def _die_on_7(j):
    if j == 7:
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
    return {"j": j, "pid": os.getpid()}


def test_a_worker_killed_with_kill_9_loses_only_its_job():
    with deadline(30):
        rows = list(engine_local.run_jobs(list(range(40)), _die_on_7, 3,
                                          lost=lambda j, msg: {"j": j, "lost": msg}))
    assert [r["j"] for r in rows] == list(range(40))  # every job, in order, none lost
    assert "lost" not in rows[6] and "lost" not in rows[8]
    assert "worker process" in rows[7]["lost"] and "SIGKILL" in rows[7]["lost"]
    assert not multiprocessing.active_children()


def _raise_on_3(j):
    if j == 3:
        raise ZeroDivisionError("a bug in the task")
    return {"j": j}


def test_a_bug_in_the_task_still_surfaces_and_the_workers_stop():
    with deadline(30), pytest.raises(ZeroDivisionError, match="a bug in the task"):
        list(engine_local.run_jobs(list(range(20)), _raise_on_3, 2, lost=lambda j, m: {}))
    assert not multiprocessing.active_children()


def _sleep(j):
    time.sleep(60)
    return {}


def test_ctrl_c_stops_a_run_whose_workers_are_busy():
    signal.setitimer(signal.ITIMER_REAL, 0)
    old = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 1.0)  # Ctrl-C one second in, while every worker is busy
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(engine_local.run_jobs(list(range(8)), _sleep, 2))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 15
    assert not multiprocessing.active_children()


def test_spec2img_run_ends_when_a_worker_is_killed(tmp_path, monkeypatch, capsys):
    from spec2img import convert as conv

    clips = tmp_path / "a"
    for i in range(12):
        wav(clips / "c" / f"n{i:02d}.wav")
    real = conv.process

    def process(job, cfg, images_dir):
        if job.rel == "c/n05.wav":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job, cfg, images_dir)
    monkeypatch.setattr(conv, "process", process)  # the forked workers inherit it
    with deadline(60):
        code = spec2img_main([str(clips), str(tmp_path / "img"), *[f for f in FLAGS if f != "-q"][:-2], "-j", "2"])
    assert code == ExitCode.INPUTS_FAILED
    df = read_manifest(tmp_path / "img")
    status = dict(zip(df["source"], df["status"]))
    assert status.pop("c/n05.wav") == "failed" and set(status.values()) == {"ok"} and len(status) == 11
    error = df.set_index("source").loc["c/n05.wav", "error"]
    assert "worker process" in error and "SIGKILL" in error
    assert "worker process" in capsys.readouterr().err
    monkeypatch.undo()
    with deadline(60):  # the folder is not locked: a rerun retries the lost clip
        assert spec2img_main([str(clips), str(tmp_path / "img"), *FLAGS[:-3], "-j", "2", "-q"]) == ExitCode.OK
    assert (read_manifest(tmp_path / "img")["status"] == "ok").all()


def test_audit_ends_when_a_worker_is_killed(tmp_path, monkeypatch, capsys):
    from spec2img import audit_stats as aud  # the per-file statistics the audit's workers run

    clips = tmp_path / "a"
    for i in range(6):
        wav(clips / f"n{i}.wav")
    real = aud.file_stats

    def stats(path):
        if path.name == "n3.wav":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path)
    monkeypatch.setattr(aud, "file_stats", stats)
    with deadline(60):
        code = spec2img_main(["audit", str(clips), "--out", str(tmp_path / "au"), "-j", "2", "-q"])
    assert code == ExitCode.INPUTS_FAILED
    df = pd.read_csv(tmp_path / "au" / "audit.csv", keep_default_na=False)
    status = dict(zip(df["path"], df["status"]))
    assert status.pop("n3.wav") == "failed" and set(status.values()) == {"ok"} and len(status) == 5
    assert "worker process" in df.set_index("path").loc["n3.wav", "error"]


def test_ctrl_c_on_the_terminal_stops_spec2img_j2(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: exit 130, workers gone, the
    manifest of what was done written, the folder unlocked."""
    import subprocess
    import sys

    clips = tmp_path / "a"
    rng = np.random.default_rng(0)
    for i in range(240):  # about a second of work on 2 quiet cores
        wav(clips / f"n{i:03d}.wav", (0.1 * rng.standard_normal(8000 * 20)).astype(np.float32))
    images = tmp_path / "img"
    proc = subprocess.Popen([sys.executable, "-m", "spec2img.cli", str(clips), str(images), *FLAGS[:-3], "-j", "2"],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        t0 = time.monotonic()
        while not any(images.glob("*.png")) and time.monotonic() - t0 < 60:
            time.sleep(0.01)  # the workers are busy once the first image is written
        assert proc.poll() is None, "the run ended before Ctrl-C: give it more work"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err and "interrupted" in err
    df = read_manifest(images, require_complete=False)
    assert len(df) == 240 and (df["status"] == "skipped").sum() >= 1 and set(df["status"]) <= {"ok", "skipped"}
    assert all((images / i).is_file() for r in df[df["status"] == "ok"].itertuples() for i in r.images)
    with pytest.raises(Exception):  # nobody else holds the group: no orphan worker is left
        os.killpg(proc.pid, 0)
    from spec2img.lock import FolderLock
    FolderLock(images).acquire().release()  # unlocked


# ------------------------------------------------------------------------------ 2. special files
def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no mkfifo here")
    os.mkfifo(path)
    return path


def test_a_fifo_without_reader_is_refused_and_kept(tmp_path):
    fifo = _fifo(tmp_path / "out.csv")
    with deadline(), pytest.raises(OutputError, match="FIFO that no process is reading"):
        write_atomic(fifo, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_a_fifo_with_a_reader_is_written_in_place(tmp_path):
    fifo = _fifo(tmp_path / "out.csv")
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    with deadline():
        for _ in range(200):  # until the reader has the FIFO open
            try:
                write_atomic(fifo, b"a,b\n")
                break
            except OutputError:
                time.sleep(0.01)
        reader.join()
    assert got == [b"a,b\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_socket_or_folder_is_refused_with_one_line(tmp_path):
    sock_path = tmp_path / "s.csv"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
    except OSError:
        pytest.skip("no unix sockets here")
    try:
        with pytest.raises(OutputError, match="a socket, not a file"):
            write_atomic(sock_path, b"x")
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    finally:
        s.close()
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(OutputError, match="a folder, not a file"):
        write_atomic(tmp_path / "d.csv", b"x")


def _null_copy(tmp_path: Path) -> Path:
    """A character device like /dev/null (1, 3), made in tmp_path: never the machine's own."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError):
        pytest.skip("mknod of a character device needs root")
    return node


def test_a_character_device_is_written_in_place_never_replaced(tmp_path):
    node = _null_copy(tmp_path)
    write_atomic(node, b"discarded")
    st = os.stat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    link = tmp_path / "link.csv"  # a link to a regular file: the file is replaced, the link stays
    (tmp_path / "target.csv").write_text("old")
    os.symlink("target.csv", link)
    write_atomic(link, b"new")
    assert link.is_symlink() and (tmp_path / "target.csv").read_text() == "new"


def test_every_writer_keeps_a_special_file(tmp_path, capsys, small_run):
    """predict, export, report, audit (CLI) and tag / cv / suspect writers (library) all go through
    the one writer: a character device stays one, a FIFO nobody reads is one line, exit 2."""
    from classify.cli import main as classify_main
    from classify.prediction.tag import write_tags
    from classify.scoring.suspects import write_suspect_labels

    node = _null_copy(tmp_path)
    clip = wav(tmp_path / "x.wav")
    assert classify_main(["predict", str(small_run), str(clip), "--out", str(node), "-q"]) == ExitCode.OK
    assert stat.S_ISCHR(os.stat(node).st_mode)
    capsys.readouterr()
    fifo = _fifo(tmp_path / "p.csv")
    with deadline():
        assert classify_main(["predict", str(small_run), str(clip), "--out", str(fifo), "-q"]) == ExitCode.USAGE
    assert "FIFO" in one_error_line(capsys)
    onnx = _fifo(tmp_path / "m.onnx")
    with deadline(60):
        assert classify_main(["export", str(small_run), "--out", str(onnx), "-q"]) == ExitCode.USAGE
    assert "m.onnx" in one_error_line(capsys)
    audit_out = tmp_path / "audit"
    audit_out.mkdir()
    _fifo(audit_out / "audit.csv")
    wav(tmp_path / "clips" / "y.wav")
    with deadline():
        assert spec2img_main(["audit", str(tmp_path / "clips"), "--out", str(audit_out), "-j", "1", "-q"]) \
            == ExitCode.USAGE
    assert "audit.csv" in one_error_line(capsys)
    with deadline(), pytest.raises(OutputError):
        write_tags(pd.DataFrame({"source": ["=x"], "label": ["a"], "probability": [0.5]}), _fifo(tmp_path / "t.csv"))
    cv_dir = tmp_path / "cv"
    cv_dir.mkdir()
    _fifo(cv_dir / "suspect_labels.csv")
    preds = pd.DataFrame({"source": ["a.wav", "b.wav"], "labels": ["x", "y"], "p_x": [0.9, 0.9], "p_y": [0.1, 0.1]})
    with deadline(), pytest.raises(OutputError):
        write_suspect_labels(cv_dir, preds, ["x", "y"])
    assert stat.S_ISFIFO(os.stat(cv_dir / "suspect_labels.csv").st_mode)


def test_report_into_a_folder_whose_index_is_a_device(tmp_path, capsys):
    from classify.cli import main as classify_main
    from classify.report.synthetic import write_synthetic_run

    paths = write_synthetic_run(tmp_path / "s", n_classes=3, n_clips=9, tiles=1)
    out = tmp_path / "rep"
    out.mkdir()
    _fifo(out / "index.html")
    with deadline(120):
        code = classify_main(["report", str(paths["run"]), "--out", str(out), "--no-tsne", "-q"])
    assert code == ExitCode.USAGE and "index.html" in one_error_line(capsys)
    assert stat.S_ISFIFO(os.stat(out / "index.html").st_mode)


# ------------------------------------------------------------------------------ 3. a full disk
class _FullFor:
    """``os.fdopen`` whose writes fail with ENOSPC (as the kernel says it: no file name) for temp
    files of outputs whose name contains ``part``."""

    def __init__(self, part: str):
        self.part, self.real = part, os.fdopen

    def __call__(self, fd, mode="r", *a, **k):
        name = os.readlink(f"/proc/self/fd/{fd}")
        fh = self.real(fd, mode, *a, **k)
        if self.part in Path(name).name:
            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            fh.write = write
        return fh


def _no_tmp(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from classify.testing import make_untrained_run

    return make_untrained_run(tmp_path_factory.mktemp("io") / "run", arch="resnet18")


def test_disk_full_in_export_keeps_the_old_export(tmp_path, monkeypatch, capsys, small_run):
    from classify.cli import main as classify_main

    run = Path(shutil.copytree(small_run, tmp_path / "run"))
    (run / "model.onnx").write_bytes(b"the previous export")
    monkeypatch.setattr(sio.os, "fdopen", _FullFor("model.onnx"))
    with deadline(120):
        assert classify_main(["export", str(run), "-q"]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert "disk full" in line and str(run / "model.onnx") in line
    assert (run / "model.onnx").read_bytes() == b"the previous export" and _no_tmp(run)


def test_disk_full_in_fit_is_one_line_and_keeps_the_previous_model(tmp_path, monkeypatch, capsys, tiny_images):
    from classify.cli import main as classify_main

    out = tmp_path / "run"
    tiny = ["--arch", "resnet18", "--no-pretrained", "--bs", "8", "--epochs", "1", "--freeze-epochs", "0", "-q"]
    assert classify_main(["fit", str(tiny_images), "--out", str(out), *tiny]) == ExitCode.OK
    before = (out / "model.pt").read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(sio.os, "fdopen", _FullFor("model.pt"))
    assert classify_main(["fit", str(tiny_images), "--out", str(out), *tiny]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert "disk full" in line and str(out / "model.pt") in line
    assert (out / "model.pt").read_bytes() == before and _no_tmp(out) and not (out / "checkpoints").exists()


def test_disk_full_in_report_keeps_the_previous_page(tmp_path, monkeypatch, capsys):
    from classify.cli import main as classify_main
    from classify.report.synthetic import write_synthetic_run

    paths = write_synthetic_run(tmp_path / "s", n_classes=3, n_clips=9, tiles=1, n_audio=4)
    args = ["report", str(paths["run"]), "--no-tsne", "--force", "-q"]
    assert classify_main(args) == ExitCode.OK
    report = paths["run"] / "report"
    page = (report / "index.html").read_bytes()
    capsys.readouterr()
    for part, name in (("index.html", "index.html"), (".png", "thumbs"), (".wav", "audio")):
        shutil.rmtree(report / "thumbs", ignore_errors=True)  # written again by this build
        shutil.rmtree(report / "audio", ignore_errors=True)
        monkeypatch.setattr(sio.os, "fdopen", _FullFor(part))
        assert classify_main(args) == ExitCode.USAGE, part
        line = one_error_line(capsys)
        assert "disk full" in line and str(report) in line, line
        assert (report / "index.html").read_bytes() == page and _no_tmp(report)
        monkeypatch.undo()


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KB tmpfs (as root), as test_hostile's disk-full test mounts."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mount not permitted here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_export_report_and_lock_on_a_real_full_disk(tmp_path, capsys, small_run, small_disk):
    from classify.cli import main as classify_main
    from classify.report.synthetic import write_synthetic_run

    with deadline(120):
        assert classify_main(["export", str(small_run), "--out", str(small_disk / "m.onnx"), "-q"]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert "disk full" in line and "m.onnx" in line and not list(small_disk.iterdir())
    paths = write_synthetic_run(tmp_path / "s", n_classes=3, n_clips=9, tiles=1, n_audio=9, audio_seconds=2.0)
    with deadline(120):
        assert classify_main(["report", str(paths["run"]), "--out", str(small_disk / "rep"), "--no-tsne",
                              "-q"]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert "disk full" in line and str(small_disk / "rep") in line and _no_tmp(small_disk)
    assert not (small_disk / "rep" / "index.html").exists()
    shutil.rmtree(small_disk / "rep")
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)  # fill it to the last block
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    clips = tmp_path / "a"
    wav(clips / "x.wav")
    assert spec2img_main([str(clips), str(small_disk / "img"), *FLAGS]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert "disk full" in line or "cannot write" in line, line


def test_a_full_disk_that_cannot_hold_the_lock_file_is_one_line(tmp_path, monkeypatch, capsys):
    from classify.runfolder import writing_run_dir
    from spec2img import lock

    real = lock.os.open

    def no_space(path, *a, **k):
        if str(path).endswith(".lock"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *a, **k)
    monkeypatch.setattr(lock.os, "open", no_space)
    clips = tmp_path / "a"
    wav(clips / "x.wav")
    assert spec2img_main([str(clips), str(tmp_path / "img"), *FLAGS]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert "disk full" in line and ".lock" in line
    with pytest.raises(OSError) as err:
        with writing_run_dir(tmp_path / "run"):
            pass
    assert err.value.filename == str(tmp_path / "run" / ".lock")  # -> run_main: one line, exit 2


def test_the_lock_holds_when_its_note_cannot_be_written(tmp_path, monkeypatch):
    from spec2img import lock

    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(lock.os, "pwrite", full)
    with lock.FolderLock(tmp_path):
        with pytest.raises(lock.LockError):
            lock.FolderLock(tmp_path).acquire()


def test_disk_full_line_names_only_files_that_exist(tmp_path, monkeypatch, capsys):
    from spec2img import convert as conv

    clips = tmp_path / "a"
    for i in range(4):
        wav(clips / f"n{i}.wav")
    real = conv.io.write_atomic

    def full(path, data):
        if path.suffix == ".png" or path.name == "manifest.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
    monkeypatch.setattr(conv.io, "write_atomic", full)
    monkeypatch.setattr("spec2img.manifest.write_atomic", full)
    assert spec2img_main([str(clips), str(tmp_path / "img"), *FLAGS]) == ExitCode.USAGE
    line = one_error_line(capsys)
    assert not (tmp_path / "img" / "manifest.csv").exists()
    assert "listed in" not in line and "no manifest.csv could be written" in line, line


# ------------------------------------------------------------------------------ 6. hostile model.pt
@pytest.mark.parametrize("payload", [b"garbage, not a zip", b"", "pickle"])
def test_export_of_a_garbage_or_hostile_model_pt_is_one_line_exit_2(tmp_path, capsys, small_run, payload):
    import pickle

    from classify.cli import main as classify_main

    run = Path(shutil.copytree(small_run, tmp_path / "run"))
    if payload == "pickle":  # a pickle that would run a command: refused, never run
        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {tmp_path / 'pwned'}",))
        import torch
        torch.save({"x": Evil()}, run / "model.pt", pickle_module=pickle)
    else:
        (run / "model.pt").write_bytes(payload)
    for cmd in (["export", str(run)], ["predict", str(run), str(wav(tmp_path / "x.wav")), "--out",
                                       str(tmp_path / "p.csv")]):
        assert classify_main([*cmd, "-q"]) == ExitCode.USAGE
        line = one_error_line(capsys)
        assert "model.pt" in line
    assert not (tmp_path / "pwned").exists() and not (run / "model.onnx").exists()


def test_every_failed_manifest_row_has_its_stderr_line(tmp_path, capsys):
    c = make_corpus(tmp_path)
    with deadline():
        spec2img_main([str(c.audio), str(tmp_path / "img"), *FLAGS[:-1]])
    err = capsys.readouterr().err
    df = read_manifest(tmp_path / "img")
    for error in df.loc[df["status"] == "failed", "error"]:
        assert f"failed: {error}" in err, error


# ------------------------------------------------------------------------------ 7. CSV injection
def _cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def _formula_free(path: Path) -> None:
    import re

    number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
    bad = [c for c in _cells(path) if c.startswith(FORMULA_START) and not number.fullmatch(c)]
    assert not bad, (path.name, bad[:5])


def test_sheet_cells_round_trip_exactly_and_leave_numbers_alone():
    sheet_cell, plain_cell = sio.sheet_cell, sio.plain_cell
    for s in [*FORMULAS, "'", "''", "'a", "-3.5", "+1e5", "-", "=", "", "plain", "a=b", "''=x"]:
        assert plain_cell(sheet_cell(s)) == s
    assert sheet_cell("-3.5") == "-3.5" and sheet_cell(-3.5) == -3.5 and sheet_cell(None) is None
    assert sheet_cell("=cmd") == "'=cmd" and sheet_cell("@x") == "'@x" and sheet_cell("\tx") == "'\tx"


def test_the_manifest_is_formula_free_and_round_trips_exactly(tmp_path):
    from spec2img.convert import convert

    c = make_corpus(tmp_path)
    with deadline():
        summary = convert(c.audio, tmp_path / "img", CFG, labels_csv=c.labels_csv, jobs=1)
    _formula_free(tmp_path / "img" / "manifest.csv")
    df = read_manifest(tmp_path / "img")
    assert [r["labels"] for r in summary.rows] == list(df["labels"])
    assert [r["source"] for r in summary.rows] == list(df["source"])
    for name in FORMULA_FILES:
        assert name in set(df["source"])
    assert {lab for labs in df["labels"] for lab in labs} >= {f.strip() for f in FORMULAS}


def test_prediction_csvs_are_formula_free(tmp_path):
    from classify.prediction.predict import predict
    from classify.prediction.results import write_csv, write_kaggle, write_timeline
    from classify.prediction.tag import write_tags

    c = make_corpus(tmp_path)
    with deadline():
        res = predict(None, [c.audio], scorers=[_fake_scorer(("=cmd|' -C calc'!A0", "@x"))], timeline=True)
    for write, name in ((write_csv, "p.csv"), (write_kaggle, "k.csv"), (write_timeline, "t.csv")):
        _formula_free(write(res, tmp_path / name))
    back = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert "'" + str(c.audio / "=cmd|' -C calc'!A0.wav") in set(back["file"]) or any(
        f.endswith("=cmd|' -C calc'!A0.wav") for f in back["file"])
    res.multi_label = True
    _formula_free(write_kaggle(res, tmp_path / "k2.csv"))  # class names are its column names
    tags = pd.DataFrame({"source": ["=x.wav"], "rank": [1], "label": ["+y"], "probability": [-0.5]})
    _formula_free(write_tags(tags, tmp_path / "tags.csv"))
    assert "-0.5000" in _cells(tmp_path / "tags.csv")  # a negative number is data


def test_run_folder_tables_are_formula_free_and_read_back_exactly(tmp_path):
    from classify.data.imageset import _edit_csv
    from classify.report.load import _read_csv
    from classify.runfolder import write_predictions
    from classify.scoring.suspects import write_suspect_labels

    classes = ["=a", "b"]
    table = pd.DataFrame({"image": ["=a/x.png", "b/@y.png"], "source": ["=x.wav", "@y.wav"],
                          "offset": [0.0, 0.5], "labels": [["=a"], ["b"]]})
    probs = np.array([[0.2, 0.8], [0.7, 0.3]], np.float32)
    path = write_predictions(tmp_path, table, probs, np.array([1.6, 1.2]), classes, threshold=None)
    _formula_free(path)
    back = _read_csv(path)
    assert list(back["source"]) == ["=x.wav", "@y.wav"] and list(back["pred"]) == ["b", "=a"]
    assert list(back.columns[-2:]) == ["p_=a", "p_b"]
    preds = pd.DataFrame({"source": ["=x.wav", "@y.wav", "+z.wav"], "labels": ["=a", "b", "=a"],
                          "p_=a": [0.05, 0.9, 0.95], "p_b": [0.95, 0.1, 0.05]})
    out = write_suspect_labels(tmp_path, preds, classes)
    _formula_free(out)
    df = _edit_csv(out, "exclude", need_label=False)
    assert set(df["file"]) <= {"=x.wav", "@y.wav", "+z.wav"} and len(df)


def test_audit_csv_is_formula_free(tmp_path):
    c = make_corpus(tmp_path)
    with deadline():
        spec2img_main(["audit", str(c.audio), "--labels", str(c.labels_csv), "--out", str(tmp_path / "au"),
                       "-j", "1", "-q"])
    _formula_free(tmp_path / "au" / "audit.csv")
    _formula_free(tmp_path / "au" / "audit_classes.csv")


# ------------------------------------------------------------------------------ 11. predict's default
def test_predict_never_replaces_a_file_it_was_not_given(tmp_path, monkeypatch, capsys, small_run):
    from classify.cli import main as classify_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "predictions.csv").write_text("my own work\n")
    clip = wav(tmp_path / "x.wav")
    assert classify_main(["predict", str(small_run), str(clip)]) == ExitCode.OK
    assert (tmp_path / "predictions.csv").read_text() == "my own work\n"
    assert (tmp_path / "predictions-1.csv").is_file()
    assert "predictions-1.csv" in capsys.readouterr().err
    before = tree(tmp_path)
    assert classify_main(["predict", str(small_run), str(tmp_path / "typo.wav"), str(tmp_path / "tpyo.wav"),
                         "-q"]) \
        == ExitCode.USAGE
    err = capsys.readouterr().err.strip().splitlines()  # a "failed:" line per input, then the error
    assert err[-1].startswith("error:") and "typo.wav" in err[-1] and "nothing written" in err[-1]
    assert len(err) == 3 and "Traceback" not in " ".join(err)
    assert tree(tmp_path) == before
