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


def onnx_model(folder: Path, **run_kwargs) -> Path:
    """An untrained, seeded tiny run (tests/tiny_run.py) exported to ONNX; returns the .onnx path."""
    from classify.export import export_onnx
    from tiny_run import make_untrained_run

    return export_onnx(make_untrained_run(folder, **run_kwargs))


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
