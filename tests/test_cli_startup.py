"""The CLI answers at once: --help, argument and path errors, and ONNX prediction never import
torch or fastai (checked in a fresh interpreter through the real entry points), and a failed
start leaves no run folder behind. Wall time and memory are measured by
benchmarks/bench_startup.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write

HEAVY = ("torch", "fastai", "torchvision", "timm", "sklearn", "matplotlib", "ray", "pandas")

PROBE = """
import json, sys
from {module} import main
try:
    code = main({argv!r})
except SystemExit as exc:  # argparse's --help and usage errors
    code = exc.code
print(json.dumps({{"code": code, "heavy": sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))}}))
"""


def run_cli(module: str, argv: list[str], cwd: Path) -> dict:
    """Run ``module.main(argv)`` in a fresh interpreter; its exit code and heavy modules loaded."""
    code = PROBE.format(module=module, argv=argv, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


@pytest.mark.parametrize("argv", [
    ["--help"], ["fit", "--help"], ["cv", "--help"], ["lr-find", "--help"], ["report", "--help"],
    ["predict", "--help"], ["export", "--help"], ["tag", "--help"], ["demo", "--help"], ["serve", "--help"],
])
def test_classify_help_loads_no_heavy_module(argv, tmp_path):
    r = run_cli("classify.cli", argv, tmp_path)
    assert r["code"] == 0 and r["heavy"] == []


@pytest.mark.parametrize("argv", [["--help"], ["audit", "--help"], ["synth", "--help"]])
def test_spec2img_help_loads_no_heavy_module(argv, tmp_path):
    r = run_cli("spec2img.cli", argv, tmp_path)
    assert r["code"] == 0 and r["heavy"] == []


@pytest.mark.parametrize("argv, message", [
    (["fit", "missing_dir"], "missing_dir: no such folder"),
    (["fit", "."], "not a spec2img output folder"),
    (["cv", "missing_dir"], "missing_dir: no such folder"),
    (["fit", ".", "--arch", "nope"], "--arch 'nope' is unknown"),
    (["fit", ".", "--lr", "fast"], "'fast' is not a learning rate"),
    (["fit", ".", "--epochs", "x"], "invalid int value"),
    (["report", "missing_run"], "missing_run: no such run folder"),
    (["predict", "missing_run", "a.wav"], "missing_run: no such run folder"),
    (["predict", "m.onnx", "a.wav"], "m.onnx: no such ONNX model"),
    (["export", "."], "not a run folder"),
])
def test_argument_and_path_errors_load_no_heavy_module(argv, message, tmp_path):
    r = run_cli("classify.cli", argv, tmp_path)
    assert r["code"] == 2 and r["heavy"] == []
    lines = [line for line in r["stderr"].splitlines() if line.strip()]
    assert message in lines[-1] and "Traceback" not in r["stderr"]


def test_bad_arch_on_a_real_image_folder_is_refused_before_any_fit_line(tiny_images, tmp_path):
    run = tmp_path / "run"
    r = run_cli("classify.cli", ["fit", str(tiny_images), "--arch", "resnet35", "--out", str(run)], tmp_path)
    assert r["code"] == 2 and r["heavy"] == []
    assert r["stderr"].strip().splitlines() == [r["stderr"].strip()]  # one line, nothing logged before
    assert not run.exists()


@pytest.mark.slow
def test_onnx_prediction_through_the_cli_loads_neither_torch_nor_fastai(tmp_path):
    from classify.prediction.export import export_onnx
    from classify.testing import make_untrained_run

    model = export_onnx(make_untrained_run(tmp_path / "run"), tmp_path / "m.onnx")
    clip = write(tmp_path / "clip.wav", tone(700, sr=8000, duration=5.0, noise=0.01), 8000)
    r = run_cli("classify.cli", ["predict", str(model), str(clip), "--out", str(tmp_path / "p.csv")], tmp_path)
    assert r["code"] == 0, r["stderr"]
    assert r["heavy"] == []  # no torch, fastai, sklearn or pandas: the ONNX path stays light
    assert (tmp_path / "p.csv").read_text().splitlines()[1].endswith(",ok,")


def test_a_failed_start_leaves_no_run_folder(tiny_images, tmp_path, monkeypatch):
    from classify import commands
    from classify.config import TrainConfig
    from classify.errors import ClassifyError

    def refuse(ds, cfg, run_dir):
        raise ClassifyError("weights cannot be had")

    monkeypatch.setattr(commands, "fit_function", lambda cfg: refuse)
    run = tmp_path / "runs" / "first"
    with pytest.raises(ClassifyError):
        commands.fit(TrainConfig(images=str(tiny_images), out=str(run), arch="resnet18", pretrained=False))
    assert not run.exists()
    # A folder that existed before is left alone.
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(ClassifyError):
        commands.fit(TrainConfig(images=str(tiny_images), out=str(run), arch="resnet18", pretrained=False))
    assert (run / "notes.txt").read_text() == "mine"


def test_verbosity_flags_work_before_and_after_the_subcommand():
    from classify.cli import build_parser

    p = build_parser()
    assert p.parse_args(["-v", "report", "r"]).verbose is True
    assert p.parse_args(["report", "r", "-v"]).verbose is True
    assert p.parse_args(["report", "r"]).verbose is False
    assert p.parse_args(["tag", "a.wav", "-q"]).quiet is True


def test_cli_defaults_are_the_configs_defaults():
    import dataclasses

    from classify.cli import build_parser
    from classify.config import TrainConfig

    args = build_parser().parse_args(["fit", "images"])
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name) and f.name not in ("images", "quiet"):
            assert getattr(args, f.name) == f.default, f.name
    assert np.isclose(args.mixup, TrainConfig.__dataclass_fields__["augment"].default.mixup)


def test_reading_a_run_folder_loads_no_torch(tmp_path):
    """The report and prediction read run folders through classify.runfolder; reading needs no torch."""
    code = ("import sys, classify.runfolder, classify.report.load, classify.prediction.ensemble; "
            "print(sorted({'torch', 'fastai'} & {m.split('.')[0] for m in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
