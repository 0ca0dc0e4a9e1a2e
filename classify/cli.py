"""``classify``: thin CLI over the classify library. Parse, build a config, call, map errors.

Each subcommand has an ``_add_<name>(subparsers)`` that declares its flags and a
``_cmd_<name>(args) -> int`` that only calls the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spec2img.cli import run_main

log = logging.getLogger("classify")


# ------------------------------------------------------------------------------------------ fit
def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="fine-tune a CNN on a spec2img image folder (not yet available)")
    p.add_argument("images", help="spec2img output folder")


def _cmd_fit(args) -> int:
    from .errors import ClassifyError

    raise ClassifyError("classify fit is not available yet in this version")


# -------------------------------------------------------------------------------------- predict
def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="label audio files of any length with one or more trained runs",
        description="Predict raw audio (files or folders) with a run folder from classify fit. "
                    "Features are computed in memory with the run's spectrogram settings. Several "
                    "runs (or a cv run's folds) are combined by the geometric mean of probabilities. "
                    "Only load run folders you trust (model.pt is loaded with weights_only=True; "
                    "ONNX exports, --onnx, are the safe format to share).")
    p.add_argument("run_dir", type=Path, help="run folder (or cv run folder, or model.onnx with --onnx)")
    p.add_argument("audio", type=Path, nargs="+", help="audio files and/or folders (searched recursively)")
    p.add_argument("--run", type=Path, action="append", default=[], metavar="RUN_DIR",
                   help="another run to ensemble with (repeatable)")
    p.add_argument("--out", type=Path, default=Path("predictions.csv"),
                   help="per-file CSV: file, label_1, prob_1, ... (default predictions.csv)")
    p.add_argument("--top-k", type=int, default=3, help="labels per file in --out (default 3)")
    p.add_argument("--kaggle", type=Path, metavar="CSV",
                   help="also write a Freesound submission (fname,label with the top 3 labels)")
    p.add_argument("--timeline", type=Path, metavar="CSV", help="also write per-window scores (start, end in s)")
    p.add_argument("--aggregate", choices=("mean", "max"), default="mean",
                   help="combine a file's window probabilities by mean (default) or max")
    p.add_argument("--tta", type=int, default=0, metavar="N", help="N extra shifted crops per window")
    p.add_argument("--bs", type=int, default=64, help="windows per model call (default 64)")
    p.add_argument("--onnx", action="store_true",
                   help="use the ONNX export (model.onnx in RUN_DIR, or a .onnx path) with onnxruntime")


def _cmd_predict(args) -> int:
    from .predict import predict, write_csv, write_kaggle, write_timeline

    backend = "onnx" if args.onnx or args.run_dir.suffix == ".onnx" else "torch"
    result = predict([args.run_dir, *args.run], args.audio, top_k=args.top_k, aggregate=args.aggregate,
                     tta=args.tta, timeline=args.timeline is not None, batch_size=args.bs, backend=backend)
    written = [write_csv(result, args.out)]
    if args.kaggle:
        written.append(write_kaggle(result, args.kaggle))
    if args.timeline:
        written.append(write_timeline(result, args.timeline))
    print(f"{result.line()} -> {', '.join(map(str, written))}")
    return 1 if result.failures else 0


# --------------------------------------------------------------------------------------- export
def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to ONNX (+ JSON with classes and settings)")
    p.add_argument("run_dir", type=Path, help="run folder from classify fit (a cv run: every fold)")
    p.add_argument("--onnx", action="store_true", required=True, help="export to ONNX (the only format)")
    p.add_argument("--out", type=Path, help="output .onnx file (default RUN_DIR/model.onnx)")


def _cmd_export(args) -> int:
    from .export import export_runs

    for out in export_runs(args.run_dir, args.out):
        print(f"wrote {out} and {out.name}.json")
    return 0


# ----------------------------------------------------------------------------------------- main
SUBCOMMANDS = {"fit": (_add_fit, _cmd_fit), "predict": (_add_predict, _cmd_predict),
               "export": (_add_export, _cmd_export)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classify",
        description="Train, inspect and apply audio classifiers on spec2img spectrogram images.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_main(lambda: SUBCOMMANDS[args.command][1](args), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
