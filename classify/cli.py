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


# ----------------------------------------------------------------------------------------- main
SUBCOMMANDS = {"fit": (_add_fit, _cmd_fit)}


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
