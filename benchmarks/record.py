"""What every benchmark records beside its numbers: commit, package versions, machine, load."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def environment(packages=("torch", "fastai", "numpy", "onnxruntime", "soundfile", "soxr")) -> dict:
    """Commit (with a ``+dirty`` mark), Python, package versions, CPU model and count, load average."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"commit": commit, "python": platform.python_version(), "machine": platform.machine(), "cpu": cpu,
            "cpus": os.cpu_count(), "load_avg": round(os.getloadavg()[0], 2),
            "versions": {p: v(p) for p in packages}}


def save(name: str, result: dict, markdown: str | None = None) -> Path:
    """Write ``results/<name>.json`` (and ``<name>.md``) and return the JSON path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown is not None:
        (RESULTS / f"{name}.md").write_text(markdown)
    return path
