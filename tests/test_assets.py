"""The AudioSet weights and labels ship inside the package: found with no network, no flag, no
environment variable; a tampered copy is refused with one line; the built wheel carries them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import classify.models.assets as A
from classify.models.backbones import weights as W
from classify.errors import WeightsError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Sockets refuse to open; an empty torch cache; no environment variable."""

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(W.ENV_VAR, raising=False)


def test_weights_resolve_to_the_shipped_copy_offline(no_network):
    path = W.resolve_weights()
    assert path == ROOT / "assets" / "efficientat" / W.FILENAME
    assert A.sha256_of(path) == W.SHA256 == A.ASSETS["efficientat_mn04"][1]


def test_backbone_and_labels_load_offline(no_network):
    from classify.models.archs import get_arch
    from classify.prediction.tag import audioset_labels

    body, n_features = get_arch("efficientat_mn04").factory(True, None)
    assert n_features > 0 and sum(p.numel() for p in body.parameters()) > 100_000
    labels = audioset_labels()
    assert len(labels) == 527 and labels["display_name"].iloc[0] == "Speech"


@pytest.mark.parametrize("name", list(A.ASSETS))
def test_tampered_copy_is_refused_in_one_line(tmp_path, name):
    rel, _ = A.ASSETS[name]
    shutil.copytree(ROOT / "assets", tmp_path / "assets")
    target = tmp_path / "assets" / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        A.asset_path(name, root=tmp_path / "assets")
    assert "\n" not in str(err.value) and "sha256" in str(err.value) and str(target) in str(err.value)


def test_untouched_copy_verifies(tmp_path):
    shutil.copytree(ROOT / "assets", tmp_path / "assets")
    for name, (rel, _) in A.ASSETS.items():
        assert A.asset_path(name, root=tmp_path / "assets") == tmp_path / "assets" / rel


def test_licences_sit_beside_the_files():
    for rel, _ in A.ASSETS.values():
        assert (ROOT / "assets" / Path(rel).parent / "LICENSE").is_file()


@pytest.mark.slow
def test_the_wheel_ships_the_assets_and_finds_them_installed(tmp_path):
    """Build the wheel (hatchling, no network), unpack it as an installation, and resolve there."""
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    wheel = next(out.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    for rel, _ in A.ASSETS.values():
        assert f"classify/_assets/{rel}" in names
        assert f"classify/_assets/{Path(rel).parent}/LICENSE" in names
    assert {"spec2img/assets/sortable.js", "classify/report/assets/report.js"} <= names  # the pages' scripts
    code = ("import classify.models.assets as A; p = A.asset_path('efficientat_mn04'); "
            "print(p.relative_to(A.asset_root().parents[1]))")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}, check=True)
    assert res.stdout.strip() == "classify/_assets/efficientat/mn04_as_mAP_432.pt"
