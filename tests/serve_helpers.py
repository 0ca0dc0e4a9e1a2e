"""Helpers for the ``classify serve`` tests: tiny ONNX models and a real server in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL_SPEC = dict(sr=8000, n_fft=256, hop_length=128, n_mels=32)  # as classify/testing.py (which imports torch)


def onnx_model(folder: Path, **run_kwargs) -> Path:
    """An untrained, seeded tiny run (classify/testing.py) exported to ONNX; returns the .onnx path."""
    from classify.prediction.export import export_onnx
    from classify.testing import make_untrained_run

    return export_onnx(make_untrained_run(folder, **run_kwargs))


def linear_onnx(folder: Path, *, classes=("high", "low", "mid"), multi_label: bool = False,
                threshold: float | None = None, seed: int = 0, crop_width: int = 63, scale: float = 6.0) -> Path:
    """A seeded linear classifier over the window's mean mel profile, written as ``model.onnx`` +
    ``model.onnx.json`` in the export's format, without torch (milliseconds instead of an export).

    Graph: image ``(B, C, H, W)`` -> mean over time -> flatten -> ``x @ W + b`` -> softmax (sigmoid
    when multi-label). Tones of different pitch light different mel rows, so they get different labels.
    """
    import json

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from classify.prediction.onnx_predict import ONNX_FORMAT, ONNX_FORMAT_VERSION
    from spec2img.config import SpectrogramConfig
    spec = SpectrogramConfig(**SMALL_SPEC)
    rng = np.random.default_rng(seed)
    n_in = spec.channels * spec.n_rows
    w = (scale * rng.standard_normal((n_in, len(classes))) / np.sqrt(n_in)).astype(np.float32)
    b = (0.1 * rng.standard_normal(len(classes))).astype(np.float32)
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[3], keepdims=0),
             helper.make_node("Flatten", ["m"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "W"], ["z"]),
             helper.make_node("Add", ["z", "b"], ["logits"]),
             helper.make_node("Sigmoid", ["logits"], ["probs"]) if multi_label
             else helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "linear_test",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", spec.channels, spec.n_rows, "width"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", len(classes)])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    meta = {"format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION, "input": "image", "output": "probs",
            "classes": list(classes), "spectrogram": spec.to_dict(), "crop_width": crop_width,
            "multi_label": multi_label, "threshold": threshold, "arch": "linear_test", "run_dir": str(folder)}
    (folder / "model.onnx.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


class ServerProcess:
    """``classify serve MODEL --port 0 ...`` in a child process (loopback); ``url`` once it listens."""

    def __init__(self, *args: str, timeout: float = 120.0):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "classify.cli", "serve", *args, "--port", "0"],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.url = None
        got = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                if self.url is None and "http://" in line:
                    self.url = line.split("http://", 1)[1].split()[0].rstrip("/")
                    self.url = "http://" + self.url
                    got.set()
            got.set()

        threading.Thread(target=pump, daemon=True).start()
        if not got.wait(timeout) or self.url is None:
            self.stop()
            raise AssertionError(f"classify serve did not start: {''.join(self.lines)[-2000:]}")
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/health", timeout=5).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def fake_mic_chromium(mic: Path, profile: Path):
    """Headless Chromium (Debian's, never a downloaded one) whose microphone plays the WAV ``mic``,
    with a fresh profile folder; browser console logs kept. The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1000",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={mic}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    return drv
