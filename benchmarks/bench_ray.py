"""Beyond one machine, measured on this one: ``--engine ray`` against ``-j 2``, a paper estimate for
FSD50K / AudioSet, and the memory of loading a training set with and without the image store.

1. Conversion, in one process and one run per engine on the same clips (ESC-50 dev, FSDD):
   ``-j 2``; Ray cold (a local 2-CPU instance started and stopped by the call, as the CLI does);
   Ray warm (an instance already running). Wall time, time to first image (a watcher polls the
   output folder every 5 ms), engine overhead per clip = (Ray warm - ``-j 2``) / clips.
2. On paper: core-seconds per audio-second from the ``-j 2`` runs, scaled to FSD50K (51,197 clips,
   108 h) and AudioSet (~2.0 M clips x 10 s) on N nodes of M cores, with the output bytes per
   image measured, so the storage each needs is stated too.
3. Memory: RSS (anonymous and file-backed, from /proc/self/status) of ``load_image_set`` on the
   FSDD images in a fresh process, decoded in memory vs memory-mapped from ``spec2img store``, and
   after one pass over every image (a training epoch touches every pixel once). Not a training run.

Usage (about 3-5 minutes on 2 cores)::

    nice -n 5 uv run python benchmarks/bench_ray.py [--work /tmp/bench_ray]

Writes ``benchmarks/results/ray.json`` and ``benchmarks/results/ray.md`` (commit, versions, machine).
This is a benchmark, not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback-only local instance

FSD50K = {"clips": 51_197, "audio_hours": 108.0}
AUDIOSET = {"clips": 2_000_000, "audio_hours": 2_000_000 * 10 / 3600}


def env_info() -> dict:
    import importlib.metadata as md

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    return {"commit": commit + ("+dirty" if dirty else ""), "python": platform.python_version(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cores": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "versions": {p: md.version(p) for p in ("ray", "numpy", "torch", "soundfile")}}


def first_image_watcher(folder: Path, t0: float):
    """Seconds from t0 until the first PNG appears under ``folder`` (polled every 5 ms)."""
    box: dict = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if folder.is_dir() and next(folder.rglob("*.png"), None) is not None:
                box["t"] = time.perf_counter() - t0
                return
            time.sleep(0.005)

    th = threading.Thread(target=watch, daemon=True)
    th.start()

    def done() -> float | None:
        stop.set()
        th.join()
        return box.get("t")

    return done


def timed_convert(audio: Path, out: Path, cfg, **kw) -> dict:
    from spec2img.convert import convert

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    done = first_image_watcher(out, t0)
    s = convert(audio, out, cfg, progress=False, **kw)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "first_image_s": done(), "converted": s.converted, "failed": s.failed,
            "images": s.images, "png_bytes": sum(p.stat().st_size for p in out.rglob("*.png"))}


def same_output(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.suffix == ".png" or p.name == "manifest.csv")
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in files) and \
        len(files) == sum(1 for p in b.rglob("*") if p.suffix == ".png" or p.name == "manifest.csv")


def bench_conversion(name: str, audio: Path, work: Path, cfg, *, labels: dict) -> dict:
    import ray

    from spec2img import audio as sa

    files = sa.find_audio(audio) if hasattr(sa, "find_audio") else sorted(audio.rglob("*.wav"))
    seconds = sum(sa.probe(f).duration for f in files)
    r = {"set": name, "clips": len(files), "audio_seconds": round(seconds, 1)}
    r["j2"] = timed_convert(audio, work / f"{name}_j2", cfg, jobs=2, **labels)
    r["ray_cold"] = timed_convert(audio, work / f"{name}_ray_cold", cfg, jobs=2, engine="ray", **labels)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             _node_ip_address="127.0.0.1")
    try:
        r["ray_warm"] = timed_convert(audio, work / f"{name}_ray_warm", cfg, jobs=2, engine="ray", **labels)
    finally:
        ray.shutdown()
    r["identical_to_j2"] = same_output(work / f"{name}_j2", work / f"{name}_ray_warm")
    n = max(1, r["j2"]["converted"])
    r["overhead_ms_per_clip_warm"] = round(1000 * (r["ray_warm"]["wall_s"] - r["j2"]["wall_s"]) / n, 2)
    r["steady_overhead_ms_per_clip"] = round(steady_overhead_ms(r), 2)
    r["ratio_wall_warm_over_j2"] = round(r["ray_warm"]["wall_s"] / r["j2"]["wall_s"], 2)
    r["ratio_wall_cold_over_j2"] = round(r["ray_cold"]["wall_s"] / r["j2"]["wall_s"], 2)
    r["core_s_per_audio_s"] = 2 * r["j2"]["wall_s"] / max(seconds, 1e-9)  # 2 busy cores (upper bound)
    r["png_bytes_per_audio_s"] = r["j2"]["png_bytes"] / max(seconds, 1e-9)
    print(json.dumps(r), flush=True)
    return r


def steady_overhead_ms(c: dict) -> float:
    """Ray's cost per clip once its workers run: (warm wall - warm first image) - (-j 2 wall - -j 2
    first image), per clip. The one-off start (instance, worker processes) is reported apart."""
    ray_s = c["ray_warm"]["wall_s"] - c["ray_warm"]["first_image_s"]
    pool_s = c["j2"]["wall_s"] - c["j2"]["first_image_s"]
    return 1000 * (ray_s - pool_s) / max(1, c["j2"]["converted"])


def paper(conv: list[dict]) -> dict:
    """Wall time on N nodes x M cores from the cost per audio second measured on the set most like
    FSD50K/AudioSet clips (ESC-50: 5 s clips, default preset; else the first set), Ray's steady
    per-clip overhead (clamped at 0 when within noise) and its one-off start; plus the bytes each
    core must read and write, which is what caps large clusters."""
    ref = next((c for c in conv if c["set"] == "esc50-dev"), conv[0])
    cost = ref["core_s_per_audio_s"]
    overhead = max(0.0, max(steady_overhead_ms(c) for c in conv)) / 1000 * 2  # core-s per clip
    start_s = max(c["ray_cold"]["first_image_s"] or 0 for c in conv)
    wav_bytes_per_s = 44100 * 2  # 16-bit mono 44.1 kHz input, as FSD50K ships
    out = {"from_set": ref["set"], "core_s_per_audio_s": round(cost, 5), "ray_overhead_core_s_per_clip": round(overhead, 5),
           "ray_start_s": round(start_s, 1),
           "input_mb_per_s_per_core": round(wav_bytes_per_s / cost / 1e6, 1),
           "output_mb_per_s_per_core": round(ref["png_bytes_per_audio_s"] / cost / 1e6, 2), "rows": []}
    for name, ds in (("FSD50K", FSD50K), ("AudioSet", AUDIOSET)):
        audio_s = ds["audio_hours"] * 3600
        core_s = audio_s * cost + ds["clips"] * overhead
        for nodes, cores in ((1, 2), (1, 32), (4, 32), (16, 32), (64, 32)):
            n = nodes * cores
            out["rows"].append({"set": name, "nodes": nodes, "cores_per_node": cores,
                                "wall_h": round((core_s / n + start_s) / 3600, 3),
                                "input_gb_s_needed": round(n * out["input_mb_per_s_per_core"] / 1000, 2),
                                "png_gb": round(audio_s * ref["png_bytes_per_audio_s"] / 1e9, 1)})
    return out


MEM_PROBE = r"""
import json, sys, time
from pathlib import Path
def status():
    d = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            d[k] = int(v.split()[0]) / 1024
    return d
import torch  # imported before the baseline: the same in both modes
from classify.data.imageset import load_image_set
base = status()
t0 = time.perf_counter()
ds = load_image_set(Path(sys.argv[1]))
t_load = time.perf_counter() - t0
after_load = status()
total = sum(int(im.sum()) for im in ds.images)  # one pass over every pixel, as an epoch does
after_pass = status()
print(json.dumps({"images": len(ds.images), "load_s": round(t_load, 2), "base": base, "after_load": after_load,
                  "after_pass": after_pass, "checksum": total}))
"""


def bench_memory(images: Path) -> dict:
    from spec2img.store import STORE_DIR, build_store

    shutil.rmtree(images / STORE_DIR, ignore_errors=True)

    def probe() -> dict:
        out = subprocess.run([sys.executable, "-c", MEM_PROBE, str(images)], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    r = {"in_memory": probe()}
    t0 = time.perf_counter()
    build_store(images)
    r["store_build_s"] = round(time.perf_counter() - t0, 2)
    r["store_bytes"] = (images / STORE_DIR / "images.u8").stat().st_size
    r["mmap"] = probe()
    assert r["mmap"]["checksum"] == r["in_memory"]["checksum"], "store pixels differ"
    print(json.dumps(r), flush=True)
    return r


def markdown(res: dict) -> str:
    e = res["env"]
    lines = [f"### Beyond one machine (commit {e['commit']}, {e['machine']}, {e['cores']} cores, Python {e['python']}, "
             f"ray {e['versions']['ray']}; load average at start {e['load_average'][0]:.1f})", "",
             "Command: `nice -n 5 uv run python benchmarks/bench_ray.py`", "",
             "| set | clips | -j 2 wall s | Ray cold wall s | Ray warm wall s | first image -j 2 / cold / warm (s) "
             "| Ray - (-j 2) ms/clip, warm: all / after the first image | identical bytes |",
             "|---|---:|---:|---:|---:|---|---|---|"]
    for c in res["conversion"]:
        f = [c[k]["first_image_s"] for k in ("j2", "ray_cold", "ray_warm")]
        lines.append(f"| {c['set']} | {c['clips']} | {c['j2']['wall_s']:.2f} | {c['ray_cold']['wall_s']:.2f} | "
                     f"{c['ray_warm']['wall_s']:.2f} | {' / '.join('-' if v is None else f'{v:.2f}' for v in f)} | "
                     f"{c['overhead_ms_per_clip_warm']:.1f} / {steady_overhead_ms(c):.1f} | {c['identical_to_j2']} |")
    p = res["paper"]
    lines += ["", f"On paper, from {p['from_set']}: {p['core_s_per_audio_s']:.4f} core-s per audio second "
              f"(-j 2 wall x 2 cores), + {p['ray_overhead_core_s_per_clip'] * 1000:.1f} core-ms Ray overhead per clip, "
              f"+ {p['ray_start_s']:.0f} s start; each busy core reads {p['input_mb_per_s_per_core']} MB/s of "
              f"44.1 kHz 16-bit WAV and writes {p['output_mb_per_s_per_core']} MB/s of PNG:", "",
              "| set | nodes x cores | wall (h), CPU-bound | input read rate needed (GB/s) | PNG output (GB) |",
              "|---|---|---:|---:|---:|"]
    for r in p["rows"]:
        lines.append(f"| {r['set']} | {r['nodes']} x {r['cores_per_node']} | {r['wall_h']:.2f} | "
                     f"{r['input_gb_s_needed']} | {r['png_gb']} |")
    m = res.get("memory")
    if m:
        a, b = m["in_memory"], m["mmap"]
        lines += ["", f"Memory of `load_image_set` on FSDD ({a['images']} images; store {m['store_bytes'] / 1e6:.1f} MB, "
                  f"built in {m['store_build_s']} s), MB above the torch-imported baseline:", "",
                  "| mode | load s | RSS after load | anon after load | RSS after one pass | anon after one pass | file-backed after one pass |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, d in (("decoded in memory", a), ("memory-mapped store", b)):
            base = d["base"]
            lines.append(f"| {name} | {d['load_s']} | {d['after_load']['VmRSS'] - base['VmRSS']:.1f} | "
                         f"{d['after_load']['RssAnon'] - base['RssAnon']:.1f} | {d['after_pass']['VmRSS'] - base['VmRSS']:.1f} | "
                         f"{d['after_pass']['RssAnon'] - base['RssAnon']:.1f} | {d['after_pass']['RssFile'] - base['RssFile']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_ray"))
    ap.add_argument("--reuse", action="store_true",
                    help="recompute the estimate and tables from benchmarks/results/ray.json (no runs)")
    args = ap.parse_args()
    if args.reuse:
        res = json.loads((RESULTS / "ray.json").read_text())
        res["paper"] = paper(res["conversion"])
        (RESULTS / "ray.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "ray.md").write_text(markdown(res))
        print(markdown(res))
        return
    from spec2img.config import from_preset

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    res = {"env": env_info(), "conversion": []}
    esc = DATA / "esc50-dev"
    if (esc / "audio").is_dir():
        res["conversion"].append(bench_conversion(
            "esc50-dev", esc / "audio", work, from_preset(),
            labels=dict(labels_csv=esc / "esc50.csv")))
    fsdd = DATA / "fsdd" / "recordings"
    fsdd_img = None
    if fsdd.is_dir():
        sub = fsdd
        from fsdd_labels import main as fsdd_labels

        fsdd_labels(sub, work / "fsdd_labels.csv")
        lab = dict(labels_csv=work / "fsdd_labels.csv", file_col="file", label_col="label", fold_col="fold")
        cfg = from_preset("default", sr=8000, n_fft=512, hop_length=128, n_mels=64)
        res["conversion"].append(bench_conversion("fsdd", sub, work, cfg, labels=lab))
        fsdd_img = work / "fsdd_j2"
    if res["conversion"]:
        res["paper"] = paper(res["conversion"])
    if fsdd_img is not None:
        res["memory"] = bench_memory(fsdd_img)
    res["env"]["load_average_end"] = list(os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "ray.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
