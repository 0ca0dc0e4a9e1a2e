"""The cluster flags answer at once: ``--help`` and flag errors load neither ray nor torch, and a
misplaced flag is one line with exit status 2 (the Ray runs themselves: tests/test_ray.py, slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spec2img import convert as conv
from spec2img.cli import main as spec2img_main
from spec2img.config import from_preset
from spec2img.errors import Spec2ImgError

PROBE = """
import sys
from {mod} import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("ray", "torch", "fastai", "accelerate") if m in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("mod, argv", [("spec2img.cli", ["--help"]), ("classify.cli", ["predict", "--help"]),
                                       ("classify.cli", ["fit", "--help"]), ("spec2img.cli", ["store", "--help"])])
def test_help_loads_no_cluster_or_training_package(mod, argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(mod=mod, argv=argv)], capture_output=True, text=True,
                         timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert "--engine" in out.stdout or "store" in argv or "fit" in argv
    if "fit" in argv:
        assert "--distributed" in out.stdout


def test_address_without_the_ray_engine_is_a_usage_error(two_class_dir, tmp_path, capsys):
    assert spec2img_main([str(two_class_dir), str(tmp_path / "out"), "--address", "auto"]) == 2
    assert "--address auto needs --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_engine_names_the_choices(two_class_dir, tmp_path):
    with pytest.raises(Spec2ImgError, match="local, ray"):
        conv.convert(two_class_dir, tmp_path / "out", from_preset("default", sr=22050), engine="spark")
