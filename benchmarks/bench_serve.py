"""`classify serve` on CPU: start time, resident memory, per-window latency with 1/4/16 clients, and
memory over 10,000 requests.

    nice -n 5 uv run python benchmarks/bench_serve.py [--requests 10000] [--starts 3]

Model: an untrained network of the default backbone (efficientat_mn04, spec2img's default
``efficientat`` preset, 5 s crops = 501 columns, 50 classes; speed does not depend on training),
exported to ONNX here; the server (``classify serve MODEL.onnx --port 0``, default settings) runs in
a child process and never imports torch. Windows: what the live page posts every hop, the last 4 s
of microphone audio as a mono 16-bit WAV at 48 kHz (``?timeline=false&spectrogram=true``), cut from
ESC-50 clips when ``../shared/data/esc50-dev`` is present, else synthetic. Latency is measured by
Python clients doing what the page does (one keep-alive connection each, the next window only after
the previous answer) from sending the request to the parsed JSON answer. Memory: the server's
VmRSS from /proc. Results: benchmarks/results/serve.json and serve.md. Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]

ESC50 = ROOT.parent / "shared" / "data" / "esc50-dev" / "audio"
RESULTS = ROOT / "benchmarks" / "results"
MIC_SR, WINDOW = 48000, 4.0


def make_model(tmp: Path) -> Path:
    from classify.testing import make_untrained_run

    from classify.prediction.export import export_onnx
    from spec2img.config import from_preset

    spec = from_preset("efficientat").to_dict()
    crop = int(round(5.0 * spec["sr"] / spec["hop_length"])) + 1
    run = make_untrained_run(tmp / "run", arch="efficientat_mn04", crop_width=crop,
                             classes=[f"class_{i:02d}" for i in range(50)], **spec)
    return export_onnx(run)


def windows(n: int) -> tuple[list[bytes], str]:
    import soxr

    out = []
    files = sorted(ESC50.glob("*.wav"))[:n] if ESC50.is_dir() else []
    for i in range(n):
        if files:
            y, sr = sf.read(files[i % len(files)], dtype="float32", always_2d=True)
            y = soxr.resample(y.mean(1), sr, MIC_SR)[: int(WINDOW * MIC_SR)]
        else:
            rng = np.random.default_rng(i)
            t = np.arange(int(WINDOW * MIC_SR)) / MIC_SR
            y = 0.3 * np.sin(2 * np.pi * (200 + 37 * i) * t) + 0.05 * rng.standard_normal(t.size)
        buf = io.BytesIO()
        sf.write(buf, np.asarray(y, dtype=np.float32), MIC_SR, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    what = f"ESC-50 clips ({len(files)} files)" if files else "synthetic tones + noise"
    return out, what


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: start cost without the wait for a busy CPU."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, model: Path):
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "classify.cli", "serve", str(model), "--port", "0"],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = ""
        for line in self.proc.stdout:
            if "http://" in line:
                break
        else:
            raise SystemExit(f"server did not start: {line}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.port = int(line.split("http://", 1)[1].split("/")[0].rsplit(":", 1)[1])
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/api/health")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.02)
        self.start_s = time.perf_counter() - t0
        self.start_cpu_s = cpu_s(self.proc.pid)

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def post(conn, body: bytes) -> float:
    t0 = time.perf_counter()
    conn.request("POST", "/api/predict?timeline=false&spectrogram=true", body=body,
                 headers={"Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"HTTP {r.status}: {data[:200]!r}")
    json.loads(data)
    return time.perf_counter() - t0


def run_clients(server: Server, bodies: list[bytes], clients: int, per_client: int, on_done=None) -> list[float]:
    def client(k: int) -> list[float]:
        conn, out = server.conn(), []
        for i in range(per_client):
            out.append(post(conn, bodies[(k * per_client + i) % len(bodies)]))
            if on_done:
                on_done()
        conn.close()
        return out

    with ThreadPoolExecutor(clients) as pool:
        return [x for xs in pool.map(client, range(clients)) for x in xs]


def marginal_ms(run, files: list[Path], small: int, big: int) -> dict[str, float]:
    """``run(files)`` timed on ``small`` and ``big`` files (twice each, best of 2); the marginal wall
    and CPU milliseconds per file, ``(t(big) - t(small)) / (big - small)``."""
    wall, cpu = {}, {}
    for n in (small, big, small, big):
        t0, c0 = time.perf_counter(), time.process_time()
        run(files[:n])
        wall.setdefault(n, []).append(time.perf_counter() - t0)
        cpu.setdefault(n, []).append(time.process_time() - c0)
    out = {k: 1000 * (min(v[big]) - min(v[small])) / (big - small) for k, v in (("wall", wall), ("cpu", cpu))}
    return {**out, "small_s": min(wall[small]), "big_s": min(wall[big])}


def clip_cost(tmp: Path, small: int, big: int) -> None:
    """Marginal cost of one 5 s clip through the per-clip pipeline that serve and predict share
    (decode, resample, features, windows, model forward, tables), on one core, with the ONNX
    scorer and with the torch one: the time for ``big`` ESC-50 clips minus the time for ``small``
    of them, divided by ``big - small``."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    from classify.prediction.ensemble import torch_scorer
    from classify.prediction.onnx_predict import onnx_scorer
    from classify.prediction.predict import PredictConfig, predict_files

    torch.set_num_threads(1)
    files = sorted(ESC50.glob("*.wav"))[:big]
    if len(files) < big:
        raise SystemExit(f"needs {big} clips in {ESC50}")
    onnx = make_model(tmp)
    cfg = PredictConfig()
    lines, rec = [], {}
    for name, scorer in (("onnx", onnx_scorer(onnx, threads=1)), ("torch", torch_scorer(onnx.parent))):
        def run(fs, scorer=scorer):
            assert not predict_files([scorer], fs, cfg).failures

        run(files[:5])  # warm-up: FFT plans, mel filters, the runtime's first call
        ms = rec[name] = marginal_ms(run, files, small, big)
        lines.append(f"{name}: {ms['cpu']:.1f} ms of CPU, {ms['wall']:.1f} ms wall "
                     f"({small} clips {ms['small_s']:.2f} s, {big} clips {ms['big_s']:.2f} s wall, best of 2)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    head = (f"marginal cost per 5 s clip, one core (load average {os.getloadavg()[0]:.1f}; commit {commit}; "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus)")
    print(head, *lines, sep="\n  ")
    (RESULTS / "serve_clip_cost.txt").write_text("\n  ".join([head, *lines]) + "\n")
    (RESULTS / "serve_clip_cost.json").write_text(json.dumps(
        {"per_clip_ms": rec, "commit": commit, "load_avg": os.getloadavg()[0], "small": small, "big": big,
         "versions": {p: version(p) for p in ("numpy", "scipy", "soxr", "soundfile", "onnxruntime", "torch")},
         "machine": f"{platform.machine()}, {os.cpu_count()} cpus"}, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000, help="requests of the memory run (default 10000)")
    ap.add_argument("--starts", type=int, default=3, help="server starts timed (default 3)")
    ap.add_argument("--clip-cost", action="store_true",
                    help="only measure the marginal cost per 5 s clip on one core (200 against 20 ESC-50 clips)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    if args.clip_cost:
        clip_cost(tmp, 20, 200)
        return
    load0 = os.getloadavg()[0]
    model = make_model(tmp)
    bodies, what = windows(40)
    res: dict = {"model": "efficientat_mn04 (untrained), efficientat preset, 501-column crops, 50 classes, ONNX",
                 "windows": f"4 s mono 16-bit WAV at 48 kHz from {what}", "load_avg_start": load0}

    starts, rss_start, cpu = [], [], []
    for _ in range(args.starts):
        s = Server(model)
        starts.append(s.start_s)
        cpu.append(s.start_cpu_s)
        rss_start.append(rss_mb(s.proc.pid))
        s.stop()
    res["start_s"] = starts
    res["rss_after_start_mb"] = rss_start
    res["start_cpu_s"] = cpu
    print(f"start: {', '.join(f'{x:.2f}' for x in starts)} s ({', '.join(f'{x:.2f}' for x in cpu)} CPU s); RSS {', '.join(f'{x:.0f}' for x in rss_start)} MB",
          flush=True)

    server = Server(model)
    run_clients(server, bodies, 1, 10)  # warm-up
    res["latency_ms"] = {}
    for clients, per in ((1, 100), (4, 50), (16, 20)):
        lat = 1000 * np.array(run_clients(server, bodies, clients, per))
        row = {"n": len(lat), "p50": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
               "mean": float(lat.mean())}
        res["latency_ms"][str(clients)] = row
        print(f"{clients:2d} client(s): p50 {row['p50']:.1f} ms, p95 {row['p95']:.1f} ms ({row['n']} windows)",
              flush=True)

    done, samples, lock = [0], [], threading.Lock()
    pid = server.proc.pid
    every = max(1, args.requests // 20)

    def tick():
        with lock:
            done[0] += 1
            if done[0] % every == 0:
                samples.append((done[0], rss_mb(pid)))

    before = rss_mb(pid)
    t0 = time.perf_counter()
    run_clients(server, bodies, 4, args.requests // 4, on_done=tick)
    wall = time.perf_counter() - t0
    res["memory"] = {"requests": args.requests, "rss_before_mb": before, "samples": samples,
                     "seconds": wall, "requests_per_s": args.requests / wall}
    print(f"memory: {before:.0f} MB before, " + ", ".join(f"{n}: {m:.0f}" for n, m in samples[::4]) +
          f" MB; {args.requests / wall:.1f} requests/s", flush=True)
    server.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    res["env"] = {"commit": commit, "python": platform.python_version(), "machine": platform.machine(),
                  "cpus": os.cpu_count(), "load_avg_end": os.getloadavg()[0],
                  **{p: version(p) for p in ("onnxruntime", "fastapi", "uvicorn", "numpy", "soxr", "soundfile")}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(res, indent=2) + "\n")
    lat = res["latency_ms"]
    mem = res["memory"]
    md = [f"# classify serve benchmark (commit {commit})", "",
          f"`nice -n 5 uv run python benchmarks/bench_serve.py --requests {args.requests} --starts {args.starts}`; "
          f"{os.cpu_count()} cores, load average {load0:.1f} at start, {res['env']['load_avg_end']:.1f} at end "
          "(a shared machine: other jobs ran at the same time).", "",
          f"Model: {res['model']}. Windows: {res['windows']}.", "",
          "| measure | value |", "|---|---|",
          f"| server start (launch to first answer), {len(starts)} starts | "
          f"{' / '.join(f'{x:.1f}' for x in starts)} s |",
          f"| CPU time of the server process until its first answer | {' / '.join(f'{x:.1f}' for x in cpu)} s |",
          f"| resident memory after start | {' / '.join(f'{x:.0f}' for x in rss_start)} MB |"]
    md += [f"| latency per 4 s window, {k} client(s) (p50 / p95) | {v['p50']:.0f} / {v['p95']:.0f} ms |"
           for k, v in lat.items()]
    md += [f"| resident memory: before / after {mem['requests']} requests (max) | {mem['rss_before_mb']:.0f} / "
           f"{samples[-1][1]:.0f} ({max(m for _, m in samples):.0f}) MB |",
           f"| throughput during the memory run (4 clients) | {mem['requests_per_s']:.1f} windows/s |", "",
           "RSS every " + str(every) + " requests: " + ", ".join(f"{m:.0f}" for _, m in samples) + " MB", "",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in res["env"].items() if k not in ("commit", "load_avg_end"))]
    (RESULTS / "serve.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
