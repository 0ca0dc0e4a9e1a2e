"""Loopback load test of a real `classify serve` process: many clients post live windows at once, for
a fixed count and under a deadline; bad uploads among them must not disturb anyone else."""

from __future__ import annotations

import http.client
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from conftest import tone
from serve_helpers import ServerProcess, linear_onnx

CLIENTS, PER_CLIENT, DEADLINE_S = 12, 8, 240.0


def _window(seed: int, sr: int = 48000, seconds: float = 2.0) -> bytes:
    """What the page posts: a mono 16-bit WAV of the last window of microphone audio."""
    y = tone(300 + 150 * (seed % 7), sr=sr, duration=seconds, amp=0.3, noise=0.03, seed=seed)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.slow
def test_many_clients_posting_windows_at_once(tmp_path):
    model = linear_onnx(tmp_path / "run", seed=0)
    windows = [_window(i) for i in range(7)]
    with ServerProcess(str(model)) as server:
        url = urlparse(server.url)

        def post(conn, body):
            conn.request("POST", "/api/predict?timeline=false&spectrogram=true", body=body,
                         headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            return r.status, json.loads(r.read())

        alone = [post(http.client.HTTPConnection(url.hostname, url.port, timeout=60), w)[1]["probs"]
                 for w in windows]
        stop_at = time.monotonic() + DEADLINE_S

        def client(k: int):
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)  # keep-alive, like a page
            out = []
            for i in range(PER_CLIENT):
                if time.monotonic() > stop_at:
                    break
                if k % 4 == 0 and i == PER_CLIENT // 2:  # a few clients send garbage once
                    status, body = post(conn, b"definitely not audio")
                    out.append(("bad", status, body))
                    continue
                j = (k + i) % len(windows)
                t0 = time.perf_counter()
                status, body = post(conn, windows[j])
                out.append((j, status, body, time.perf_counter() - t0))
            conn.close()
            return out

        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = [r for rs in pool.map(client, range(CLIENTS)) for r in rs]
        wall = time.monotonic() - t0
        assert wall < DEADLINE_S + 60
        good = [r for r in results if r[0] != "bad"]
        bad = [r for r in results if r[0] == "bad"]
        assert len(good) + len(bad) == CLIENTS * PER_CLIENT, "a client stopped at the deadline"
        assert len(bad) == len(range(0, CLIENTS, 4))
        for _, status, body in bad:
            assert status == 422 and "not audio" in body["error"]
        for j, status, body, _ in good:
            assert status == 200, body
            assert body["probs"] == alone[j]  # every client got the answer for its own window
            assert body["spectrogram"]["png"]
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", "/api/health")
        health = json.loads(conn.getresponse().read())
        assert health["requests"] == len(good) + len(windows)
        lat = np.array([r[3] for r in good])
        print(f"{len(good)} windows from {CLIENTS} clients in {wall:.1f} s; latency p50 "
              f"{1000 * np.median(lat):.0f} ms, p95 {1000 * np.percentile(lat, 95):.0f} ms")
