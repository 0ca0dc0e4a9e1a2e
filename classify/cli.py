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


# ----------------------------------------------------------------------------------------- main
SUBCOMMANDS = {"fit": (_add_fit, _cmd_fit), "tag": (_add_tag, _cmd_tag)}


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
