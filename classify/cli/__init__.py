"""``classify``: thin CLI over the classify library. Parse, build a config, call, map errors.

Each subcommand has an ``_add_<name>(subparsers)`` that declares its flags and a
``_cmd_<name>(args) -> int`` that only calls the library: training commands in
:mod:`classify.cli.training`, the commands that use a trained run in :mod:`classify.cli.applying`.
"""

from __future__ import annotations

import argparse
import sys

from spec2img.cli import Parser, add_verbosity, run_main

from .applying import (
    _add_demo,
    _add_export,
    _add_predict,
    _add_report,
    _add_serve,
    _add_tag,
    _cmd_demo,
    _cmd_export,
    _cmd_predict,
    _cmd_report,
    _cmd_serve,
    _cmd_tag,
)
from .training import (
    _add_cv,
    _add_fit,
    _add_lr_find,
    _cmd_cv,
    _cmd_fit,
    _cmd_lr_find,
    _train_config,
)

__all__ = ["build_parser", "main", "_train_config"]

# ----------------------------------------------------------------------------------------- main
SUBCOMMANDS = {
    "fit": (_add_fit, _cmd_fit),
    "cv": (_add_cv, _cmd_cv),
    "lr-find": (_add_lr_find, _cmd_lr_find),
    "report": (_add_report, _cmd_report),
    "predict": (_add_predict, _cmd_predict),
    "export": (_add_export, _cmd_export),
    "tag": (_add_tag, _cmd_tag),
    "demo": (_add_demo, _cmd_demo),
    "serve": (_add_serve, _cmd_serve),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(  # no abbreviated options; its subparsers are Parsers too
        prog="classify",
        description="Train, inspect and apply audio classifiers on spec2img spectrogram images.",
    )
    add_verbosity(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in SUBCOMMANDS.values():
        add(sub)
    for p in sub.choices.values():  # -v/-q after the subcommand too, without resetting one given before it
        add_verbosity(p, default=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_main(lambda: SUBCOMMANDS[args.command][1](args), verbose=args.verbose, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())

