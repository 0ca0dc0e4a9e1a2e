"""How fast the CLI answers: wall time and peak memory of --help, a path error, a one-clip ONNX
prediction, a one-clip torch prediction, next to ``import torch`` alone; and the demo.

    uv run python benchmarks/bench_startup.py [--runs 5] [--demo]

Each command runs ``--runs`` times in a fresh process (the median is reported); peak memory is
the child's own maximum resident set (``os.wait4``). The run folder predicted with is the demo's
(``classify demo`` into a temporary folder; its wall time and accuracy are recorded with
``--demo``). Results: benchmarks/results/startup.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from record import environment, save  # noqa: E402

BIN = Path(sys.executable).parent


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit status) of one run of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--demo", action="store_true", help="also time `classify demo` (once) and record its accuracy")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    classify = str(BIN / "classify")

    t0 = time.perf_counter()
    proc = subprocess.run([classify, "demo", str(work / "demo"), "-q"], capture_output=True, text=True, check=True)
    demo_wall = time.perf_counter() - t0
    demo_lines = proc.stdout.strip().splitlines()
    run = work / "demo" / "run"
    subprocess.run([classify, "export", str(run), "-q"], check=True, capture_output=True)
    clip = sorted((work / "demo" / "new_clips").rglob("*.wav"))[0]  # a 5 s clip

    cases = {
        "classify --help": [classify, "--help"],
        "classify fit --help": [classify, "fit", "--help"],
        "path error (classify fit missing/)": [classify, "fit", str(work / "missing")],
        "predict model.onnx clip.wav (5 s clip)": [classify, "predict", str(run / "model.onnx"), str(clip),
                                                   "--out", str(work / "p_onnx.csv"), "-q"],
        "predict RUN_DIR clip.wav (torch)": [classify, "predict", str(run), str(clip),
                                             "--out", str(work / "p_torch.csv"), "-q"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    rows = {}
    for name, cmd in cases.items():
        walls, mems, codes = zip(*(measure(cmd, work) for _ in range(args.runs)))
        rows[name] = {"wall_s": statistics.median(walls), "peak_mb": statistics.median(mems),
                      "walls": walls, "exit": sorted(set(codes))}
        print(f"{name}: {rows[name]['wall_s']:.2f} s, {rows[name]['peak_mb']:.0f} MB, exit {rows[name]['exit']}",
              flush=True)
    torch_s = rows["python -c 'import torch'"]["wall_s"]
    env = environment()
    result = {"runs": args.runs, "rows": rows, "import_torch_s": torch_s, "env": env,
              "demo": {"wall_s": demo_wall, "output": demo_lines} if args.demo else None}
    md = [f"# CLI start-up (commit {env['commit']})", "",
          f"`uv run python benchmarks/bench_startup.py --runs {args.runs}{' --demo' if args.demo else ''}`; "
          f"{env['cpus']} cores ({env['cpu']}), load average {env['load_avg']} at the end; median of "
          f"{args.runs} fresh processes; peak = the process's maximum resident memory.", "",
          "| command | wall (s) | x import torch | peak memory (MB) |", "|---|---:|---:|---:|"]
    for name, r in rows.items():
        md.append(f"| `{name}` | {r['wall_s']:.2f} | {r['wall_s'] / torch_s:.2f} | {r['peak_mb']:.0f} |")
    if args.demo:
        md += ["", f"`classify demo`: {demo_wall:.0f} s wall. " + " ".join(demo_lines[:1])]
    save("startup", result, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
