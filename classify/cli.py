"""``classify``: thin CLI over the classify library. Parse, build a config, call, map errors.

Each subcommand has an ``_add_<name>(subparsers)`` that declares its flags and a
``_cmd_<name>(args) -> int`` that only calls the library.
"""

from __future__ import annotations

import argparse
import logging
import sys

from spec2img.cli import run_main

log = logging.getLogger("classify")


# ------------------------------------------------------------------------------------------ fit
def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="fine-tune a CNN on a spec2img image folder (not yet available)")
    p.add_argument("images", help="spec2img output folder")


def _cmd_fit(args) -> int:
    from .errors import ClassifyError

    raise ClassifyError("classify fit is not available yet in this version")


# ------------------------------------------------------------------------------------------ tag
def _add_tag(sub) -> None:
    p = sub.add_parser("tag", help="AudioSet tags of audio files from the pretrained EfficientAT model")
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("--top-k", type=int, default=5, help="tags per file (default 5)")
    p.add_argument("--weights", help="EfficientAT checkpoint mn04_as_mAP_432.pt (else "
                   "$SPEC2IMG_EFFICIENTAT_WEIGHTS, the torch cache, or a download)")
    p.add_argument("--out", help="write all tags to this CSV (source,rank,label,probability,index,mid)")


def _cmd_tag(args) -> int:
    from .tag import format_tags, tag, write_tags

    df = tag(args.audio, top_k=args.top_k, weights=args.weights)
    print("\n".join(format_tags(df)))
    if args.out:
        write_tags(df, args.out)
    return 0


# --------------------------------------------------------------------------------------- report
def _add_report(sub) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report/index.html: an interactive interpretation report")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `classify fit` or `cv`")
    p.add_argument("-o", "--out", help="output folder (default RUN_DIR/report)")
    p.add_argument("--images-dir", help="spec2img images folder, if not where train.json says")
    p.add_argument("--audio-dir", help="audio folder the manifest's sources are relative to")
    p.add_argument("--top-n", type=int, default=50, help="worst validation items listed (default 50)")
    p.add_argument("--max-per-cell", type=int, default=12, help="clips kept per confusion cell (default 12)")
    p.add_argument("--audio", choices=("copy", "link", "none"), default="copy",
                   help="copy referenced clips into the report (default), link them relatively, or none")
    p.add_argument("--max-audio-mb", type=float, default=100.0, help="budget for copied audio (default 100)")
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE scatter")


def _cmd_report(args) -> int:
    from .report import ReportConfig, build_report

    cfg = ReportConfig(top_n=args.top_n, max_per_cell=args.max_per_cell, audio=args.audio,
                       max_audio_mb=args.max_audio_mb, tsne=not args.no_tsne)
    index = build_report(args.run_dir, out_dir=args.out, images_dir=args.images_dir,
                         audio_dir=args.audio_dir, config=cfg)
    print(index)
    return 0


# ----------------------------------------------------------------------------------------- main
SUBCOMMANDS = {
    "fit": (_add_fit, _cmd_fit),
    "tag": (_add_tag, _cmd_tag),
    "report": (_add_report, _cmd_report),
}


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
