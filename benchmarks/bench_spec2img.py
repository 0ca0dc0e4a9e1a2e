"""spec2img speed benchmark: the tool's per-clip path and folder conversion vs the public notebooks'
specshow method vs a hand-written floor, per core, on 5 s 44.1 kHz mono 16-bit clips.

    uv run python benchmarks/bench_spec2img.py               # 200 synthetic clips + ESC-50 subset
    uv run python benchmarks/bench_spec2img.py --n 50 --quick

Every measurement runs single-threaded (OMP/MKL/OpenBLAS threads = 1, threadpoolctl, scipy.fft
workers=1); ``convert -j2`` uses two single-threaded worker processes. Timings exclude the first
call of each method (fresh-process start-up is reported separately). Methods run interleaved
in rounds and each clip keeps its fastest round, so load from other users on a shared machine
inflates all methods alike and as little as possible; the median over all rounds is shown too. Prints a markdown table.
This is a benchmark, not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
import soundfile as sf  # noqa: E402
from isal import isal_zlib  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)

from spec2img import audio, features, image, io  # noqa: E402
from spec2img.config import SpectrogramConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ESC50 = REPO.parent / "shared" / "data" / "esc50-dev" / "audio"
SR, SECONDS = 44100, 5.0


# ------------------------------------------------------------------ data
def make_clips(folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """``n`` 5 s 44.1 kHz mono PCM_16 clips: noise plus a few random tones at random levels."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * SECONDS)) / SR
    paths = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        y = 0.05 * rng.standard_normal(t.size)
        for _ in range(3):
            y += rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(50, 8000) * t)
        y *= 10 ** (rng.uniform(-30, -3) / 20) / np.max(np.abs(y))
        p = folder / f"clip_{i:04d}.wav"
        sf.write(p, y.astype(np.float32), SR, subtype="PCM_16")
        paths.append(p)
    return paths


# ------------------------------------------------------------------ methods (one clip each)
CFG = SpectrogramConfig()


def spec2img_clip(src: Path, png: Path) -> None:
    """(a) spec2img's own per-clip path with default settings."""
    y, _ = audio.load(src, sr=CFG.sr)
    img = image.render(features.feature_planes(y, CFG), CFG)
    io.write_atomic(png, io.encode_png(img, digest=CFG.digest()))


def notebook_clip(src: Path, png: Path) -> None:
    """(b) the public notebooks' method."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from notebook_recipe import specshow_png

    specshow_png(src, png)


_FB = features.mel_filters(sr=SR, n_fft=2048, n_mels=128, fmin=20.0, fmax=SR / 2, mel_scale="slaney")
_FB_T = np.ascontiguousarray(_FB.T)
_WIN = features.window_function("hann", 2048, 2048).astype(np.float32)
# The floor's banded projection: 16 groups of 8 bands, each over the bins its triangles touch.
_BANDS = []
for _m in range(0, 128, 8):
    _nz = np.flatnonzero(_FB[_m : _m + 8].any(axis=0))
    _BANDS.append((_m, _nz[0], _nz[-1] + 1, np.ascontiguousarray(_FB[_m : _m + 8, _nz[0] : _nz[-1] + 1].T)))


def png_raw(img: np.ndarray, *, level: int = 1) -> bytes:
    """Minimal greyscale PNG: filter type 0 on every row, one ISA-L deflate stream at ``level``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    h, w = img.shape
    raw = np.zeros((h, w + 1), np.uint8)
    raw[:, 1:] = img
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", isal_zlib.compress(raw.tobytes(), level))
            + chunk(b"IEND", b""))


def _floor_pixels(M_t: np.ndarray) -> np.ndarray:
    db = 10.0 * np.log10(np.maximum(M_t, 1e-10))
    db -= db.max()
    return np.clip(db * (255.0 / 80.0) + 255.5, 0, 255).astype(np.uint8).T[::-1]


def floor_scipy(src: Path, png: Path) -> None:
    """(c) int16 read; 32-frame blocks: strided frames x window, float32 scipy.fft, |X|^2, banded
    mel matmul; log10, uint8, ISA-L level-1 PNG."""
    x, _ = sf.read(src, dtype="int16")
    y = x.astype(np.float32) * np.float32(1 / 32768)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, 1024), 2048)[::512]
    M = np.empty((frames.shape[0], 128), np.float32)
    for s in range(0, frames.shape[0], 32):
        X = scipy.fft.rfft(frames[s : s + 32] * _WIN, axis=-1, workers=1)
        P = X.real**2 + X.imag**2
        for m, lo, hi, w in _BANDS:
            np.matmul(P[:, lo:hi], w, out=M[s : s + 32, m : m + 8])
    png.write_bytes(png_raw(np.ascontiguousarray(_floor_pixels(M))))


def floor_torch(src: Path, png: Path) -> None:
    """(c') the same with torch.stft (one thread)."""
    import torch

    x, _ = sf.read(src, dtype="int16")
    y = torch.from_numpy(x.astype(np.float32) * np.float32(1 / 32768))
    X = torch.stft(y, 2048, 512, window=torch.from_numpy(_WIN), center=True, pad_mode="constant",
                   return_complex=True)
    P = (X.real**2 + X.imag**2).T.numpy()
    png.write_bytes(png_raw(np.ascontiguousarray(_floor_pixels(P @ _FB_T))))


# ------------------------------------------------------------------ timing
def time_interleaved(methods: dict, paths: list[Path], out: Path, *, rounds: int, n_small: int) -> dict:
    """Per-clip wall and CPU ms of each method, interleaved: every round runs every method over
    its clips, so a burst of load from other users hits all methods alike. Each clip's time is
    its fastest round (the per-core cost without interference); returns
    ``{label: (n, mean wall ms, mean CPU ms, median wall ms over all rounds)}``.
    ``methods`` maps a label to ``(fn, small)``; a ``small`` method runs on ``n_small`` clips only.
    """
    out.mkdir(parents=True, exist_ok=True)
    wall, cpu = {}, {}
    for label, (fn, small) in methods.items():
        fn(paths[0], out / "warmup.png")  # first call: imports and caches, reported separately
        n = min(n_small, len(paths)) if small else len(paths)
        wall[label], cpu[label] = np.zeros((n, rounds)), np.zeros((n, rounds))
    for r in range(rounds):
        for k, (label, (fn, _)) in enumerate(methods.items()):
            for i in range(wall[label].shape[0]):
                w0, c0 = time.perf_counter(), time.process_time()
                fn(paths[i], out / f"{k}_{i}.png")
                wall[label][i, r] = time.perf_counter() - w0
                cpu[label][i, r] = time.process_time() - c0
    return {label: (wall[label].shape[0], 1000 * wall[label].min(1).mean(), 1000 * cpu[label].min(1).mean(),
                    1000 * float(np.median(wall[label]))) for label in methods}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_convert(audio_dir: Path, out: Path, jobs: int) -> tuple[float, float]:
    """(wall ms/clip, CPU ms/clip of this process and its workers) of ``spec2img.convert.convert``
    on a whole folder (fresh output folder: nothing cached)."""
    from spec2img.convert import convert

    w0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    summary = convert(audio_dir, out, CFG, jobs=jobs, progress=False, follow_symlinks=True)  # linked clips
    assert summary.failed == 0, summary.line()
    n = summary.converted
    return 1000 * (time.perf_counter() - w0) / n, 1000 * (time.process_time() - c0 + _children_cpu() - k0) / n


def peak_rss_mb(audio_dir: Path, out: Path) -> float:
    """Peak RSS (MB, VmHWM: ru_maxrss would carry over the benchmark's own peak across exec) of a
    fresh process that converts ``audio_dir`` with -j1."""
    code = (
        "import re, sys\n"
        "from threadpoolctl import threadpool_limits; threadpool_limits(1)\n"
        "from spec2img.convert import convert\nfrom spec2img.config import SpectrogramConfig\n"
        "convert(sys.argv[1], sys.argv[2], SpectrogramConfig(), jobs=1, progress=False, follow_symlinks=True)\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(audio_dir), str(out)], capture_output=True,
                         text=True, check=True, env=os.environ)
    return float(res.stdout.strip().splitlines()[-1])


STARTUP = {
    "spec2img features (this branch)": (
        "from spec2img import features\nfrom spec2img.config import SpectrogramConfig as C\n"
        "features.feature_planes(y, C())\n"
    ),
    "librosa stft + mel + power_to_db": (
        "import librosa\nS = librosa.feature.melspectrogram(y=y, sr=44100, n_mels=128)\n"
        "librosa.power_to_db(S, ref=np.max)\n"
    ),
}


def startup_seconds(body: str, *, cold_numba: bool) -> float:
    """Seconds from a fresh interpreter to the first feature array (imports included)."""
    code = (
        "import time; t0 = time.perf_counter()\nimport numpy as np\n"
        "y = np.random.default_rng(0).standard_normal(220500).astype(np.float32)\n"
        + body + "print(time.perf_counter() - t0)\n"
    )
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold_numba:
            env["NUMBA_CACHE_DIR"] = cache
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ main
A, B_, C1, C2 = ("(a) spec2img per-clip path", "(b) notebook specshow_png",
                  "(c) floor: blocked scipy.fft + banded mel + ISA-L PNG", "(c') floor: torch.stft + ISA-L PNG")


def run_set(name: str, paths: list[Path], tmp: Path, *, n_notebook: int, rounds: int, rows: list) -> dict:
    methods = {A: (spec2img_clip, False), B_: (notebook_clip, True), C1: (floor_scipy, False),
               C2: (floor_torch, False)}
    res = {}
    for label, (n, wall, cpu, median) in time_interleaved(methods, paths, tmp / name, rounds=rounds,
                                                          n_small=n_notebook).items():
        res[label] = (wall, cpu)
        rows.append((name, label, n, wall, cpu, median))
        print(f"  {name}: {label}: {wall:.1f} ms/clip wall (median {median:.1f}), {cpu:.1f} ms CPU", file=sys.stderr)
    for jobs in (1, 2):
        label = f"(a) `convert` folder, -j{jobs}"
        runs = [time_convert(paths[0].parent, tmp / f"{name}-convert-j{jobs}-{r}", jobs) for r in range(rounds)]
        wall, cpu = min(runs)
        res[label] = (wall, cpu)
        rows.append((name, label, len(paths), wall, cpu, None))
        print(f"  {name}: {label}: {wall:.1f} ms/clip wall, {cpu:.1f} ms CPU", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="synthetic clips to time (default %(default)s)")
    ap.add_argument("--n-notebook", type=int, default=20, help="clips for the slow notebook method")
    ap.add_argument("--memory", default="50,400", help="clip counts for the peak-memory runs")
    ap.add_argument("--esc50", type=Path, default=ESC50, help="real clips to time (skipped when absent)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each clip keeps its best")
    ap.add_argument("--quick", action="store_true", help="skip start-up and memory measurements")
    args = ap.parse_args(argv)

    rows: list = []
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_spec2img_") as tmpname:
        tmp = Path(tmpname)
        sizes = [int(s) for s in args.memory.split(",")] if not args.quick else []
        all_paths = make_clips(tmp / "synthetic", max([args.n, *sizes]))
        syn = tmp / "synthetic_timed"
        syn.mkdir()
        for p in all_paths[: args.n]:
            (syn / p.name).symlink_to(p)
        results["synthetic"] = run_set("synthetic", sorted(syn.iterdir()), tmp, n_notebook=args.n_notebook, rounds=args.rounds, rows=rows)
        esc = sorted(args.esc50.glob("*.wav")) if args.esc50.is_dir() else []
        if esc:
            results["ESC-50"] = run_set("ESC-50", esc, tmp, n_notebook=args.n_notebook, rounds=args.rounds, rows=rows)
        else:
            print(f"  {args.esc50} absent: ESC-50 part skipped", file=sys.stderr)
        memory = []
        for n in sizes:
            d = tmp / f"mem{n}"
            d.mkdir()
            for p in all_paths[:n]:
                (d / p.name).symlink_to(p)
            memory.append((n, peak_rss_mb(d, tmp / f"mem{n}-img")))
        startup = []
        if not args.quick:
            for label, body in STARTUP.items():
                startup.append((label, startup_seconds(body, cold_numba=False), startup_seconds(body, cold_numba=True)))

    load = os.getloadavg()
    print(f"\n### spec2img speed, per core ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()})\n")
    print(f"5 s 44.1 kHz mono 16-bit clips, n_fft 2048, hop 512, 128 mels, 1 thread per process. "
          f"Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine).\n")
    print("| clips | method | n | ms/clip (wall, best of rounds) | ms/clip (CPU) | median wall ms | clips/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, label, n, wall, cpu, median in rows:
        cpu_s = f"{cpu:.1f}" if cpu is not None else "-"
        med_s = f"{median:.1f}" if median is not None else "-"
        print(f"| {name} | {label} | {n} | {wall:.1f} | {cpu_s} | {med_s} | {1000 / wall:.1f} |")
    print()
    print("Ratios from CPU ms/clip (the per-core cost; wall time on a loaded machine mostly measures "
          "the other users):\n")
    for name, r in results.items():
        a = r[A][1]
        floor = min(r[C1][1], r[C2][1])
        j1, j2 = r["(a) `convert` folder, -j1"], r["(a) `convert` folder, -j2"]
        print(f"- {name}: (b)/(a) = {r[B_][1] / a:.1f}x (target >= 25x); (a)/floor = {a / floor:.2f} "
              f"(target <= 1.5); convert -j1 CPU/clip over the per-clip path = {j1[1] / a:.2f}; "
              f"-j2 wall speed-up over -j1 = {j1[0] / j2[0]:.2f}x with load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores")
    if memory:
        print("\n| clips converted (-j1) | peak RSS (MB) |\n|---:|---:|")
        for n, mb in memory:
            print(f"| {n} | {mb:.0f} |")
    if startup:
        print("\n| fresh process to first feature array | numba cache warm (s) | numba cache cold (s) |\n|---|---:|---:|")
        for label, warm, cold in startup:
            print(f"| {label} | {warm:.2f} | {cold:.2f} |")


if __name__ == "__main__":
    main()
