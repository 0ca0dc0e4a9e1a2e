"""Report size and build time on a large synthetic run (default: 80 classes, 4,000 validation items).

    uv run python benchmarks/bench_report.py [--clips 2000] [--tiles 2] [--classes 80] [--root DIR]

Writes a synthetic run to the RUN_DIR contract (noise spectrogram PNGs of 128 x 216 px, 2 s
16-bit WAVs at 16 kHz, 512-d embeddings), builds the report twice (the second run hits the t-SNE
cache and the thumbnail/audio copies already made) and prints the sizes of index.html and of
each part of the report folder. Noise PNGs compress worse than real spectrograms, so thumbnail
sizes here are an upper bound.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from classify.report import ReportConfig, build_report
from classify.report.synthetic import write_synthetic_run


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--tiles", type=int, default=2)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--root", type=Path, default=None, help="where to write (default: a temp folder)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    root = args.root or Path(tempfile.mkdtemp(prefix="bench_report_"))
    t0 = time.perf_counter()
    paths = write_synthetic_run(root, n_classes=args.classes, n_clips=args.clips, tiles=args.tiles,
                                image_size=(128, 216), audio_sr=16000, emb_dim=512, seed=0)
    print(f"synthetic run: {args.clips * args.tiles} validation items, {args.classes} classes "
          f"({time.perf_counter() - t0:.1f} s to write) in {root}")

    for label in ("first build", "rebuild"):
        t0 = time.perf_counter()
        index = build_report(paths["run"], config=ReportConfig())
        print(f"{label}: {time.perf_counter() - t0:.1f} s")

    out = index.parent
    mb = 2**20
    print(f"index.html: {index.stat().st_size / mb:.2f} MB")
    for sub in ("assets", "plots", "thumbs", "audio", "cache"):
        folder = out / sub
        if folder.is_dir():
            n = sum(1 for f in folder.iterdir() if f.is_file())
            print(f"{sub + '/':8s} {folder_bytes(folder) / mb:8.2f} MB in {n} files")
    print(f"report total: {folder_bytes(out) / mb:.2f} MB "
          f"(without cache/: {(folder_bytes(out) - folder_bytes(out / 'cache')) / mb:.2f} MB)")


if __name__ == "__main__":
    main()
