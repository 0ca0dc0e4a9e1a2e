"""``spec2img``: thin CLI over the spec2img library. Parse, build a config, call, map errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .errors import Spec2ImgError

log = logging.getLogger("spec2img")


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)


def run_main(call: Callable[[], int | None], *, verbose: bool = False, quiet: bool = False) -> int:
    """Run a subcommand; a user error becomes one ``error:`` line on stderr and exit status 2."""
    setup_logging(verbose, quiet)
    try:
        return int(call() or 0)
    except Spec2ImgError as exc:
        if verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spec2img", description="Audio clips to log-mel spectrogram images.")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: 0, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
