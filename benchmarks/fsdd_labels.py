"""Write a labels CSV for FSDD (``file,label,fold``): digit from the name, one fold per speaker.

``7_jackson_32.wav`` -> label ``7``, fold = 1-based index of ``jackson`` among the sorted speakers,
so ``--predefined-folds`` holds out one speaker per fold.

Usage::

    uv run python benchmarks/fsdd_labels.py ../shared/data/fsdd/recordings /tmp/bench/fsdd_labels.csv
    uv run spec2img ../shared/data/fsdd/recordings /tmp/bench/fsdd_img --labels /tmp/bench/fsdd_labels.csv \
        --file-col file --label-col label --fold-col fold --sr 8000 --n-fft 512 --hop-length 128 --n-mels 64
    uv run python benchmarks/accuracy.py /tmp/bench/fsdd_img ../shared/data/fsdd/recordings \
        --work /tmp/bench/fsdd --predefined-folds --run-folds 1 --archs efficientnet_lite0
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(recordings: Path, out: Path) -> None:
    files = sorted(p.name for p in Path(recordings).glob("*.wav"))
    speakers = sorted({f.split("_")[1] for f in files})
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "fold"])
        for f in files:
            digit, speaker, _ = f.split("_", 2)
            w.writerow([f, digit, speakers.index(speaker) + 1])
    print(f"{len(files)} files, speakers (fold order): {', '.join(speakers)} -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
