"""``spec2img``: thin CLI over the spec2img library. Parse, build a config, call, map errors.

    spec2img AUDIO_DIR IMAGES_DIR [options]     convert (the default command)
    spec2img audit AUDIO_DIR [--labels CSV]     per-file statistics and an HTML overview
    spec2img synth OUT_DIR                      write the synthetic demo data set
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .config import DEFAULT_PRESET, PRESETS, from_preset
from .errors import Spec2ImgError
from .exitcodes import ExitCode

log = logging.getLogger("spec2img")


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)


def run_main(call: Callable[[], int | None], *, verbose: bool = False, quiet: bool = False) -> int:
    """Run a subcommand and map what it raises to :class:`~spec2img.exitcodes.ExitCode` (both CLIs).

    A user error (:class:`Spec2ImgError`) or an OSError naming a file (disk full, read-only,
    missing) is one ``error:`` line on stderr and exit 2; Ctrl-C is 130; anything else is a bug:
    its traceback and exit 3.
    """
    setup_logging(verbose, quiet)
    try:
        return int(call() or ExitCode.OK)
    except Spec2ImgError as exc:
        if verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except OSError as exc:
        if verbose or not exc.filename:
            return _internal(exc)
        from .errors import output_error

        print(f"error: {output_error(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except Exception as exc:  # a bug: show it, with its own exit code
        return _internal(exc)


def _internal(exc: BaseException) -> int:
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
    print(f"internal error ({type(exc).__name__}: {exc}); this is a bug, please report it with the "
          "traceback above", file=sys.stderr)
    return ExitCode.INTERNAL


class Parser(argparse.ArgumentParser):
    """Every parser of both programs, subcommands included: no abbreviated options (``--epoch 3``
    is an error, not ``--epochs 3``)."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


# ------------------------------------------------------------------------------------- convert
def add_verbosity(p: argparse.ArgumentParser, default=False) -> None:
    """``-v/--verbose`` and ``-q/--quiet``, the same on every command of both programs."""
    p.add_argument("-v", "--verbose", action="store_true", default=default, help="debug output and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="only warnings and errors (no progress bars)")


_add_common = add_verbosity


def _add_follow(p: argparse.ArgumentParser) -> None:
    p.add_argument("--follow-symlinks", action="store_true",
                   help="also read symlinks that lead outside AUDIO_DIR (links inside it are always followed)")


def _add_labels(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labels (default: the first folder below AUDIO_DIR names the class)")
    g.add_argument("--labels", type=Path, metavar="CSV",
                   help="labels CSV; Freesound 2018/2019, ESC-50 and UrbanSound8K layouts are recognised")
    g.add_argument("--file-col", help="CSV column naming the audio file (other layouts)")
    g.add_argument("--label-col", help="CSV column holding the label(s), comma-separated for multi-label")
    g.add_argument("--fold-col", help="CSV column holding a predefined fold number")
    g.add_argument("--missing", choices=("error", "skip"), default="error",
                   help="a labels CSV row naming a file that is not in AUDIO_DIR: stop (error, the default) "
                        "or leave it out with one warning line (skip: a CSV of a whole data set used on a part)")


def convert_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="spec2img",
        usage="spec2img AUDIO_DIR IMAGES_DIR [options]\n"
              "       spec2img audit AUDIO_DIR [--labels CSV] [--out DIR]\n"
              "       spec2img synth OUT_DIR [--per-class N]",
        description="Render every audio clip under AUDIO_DIR as a log-mel spectrogram PNG in IMAGES_DIR, "
        "with manifest.csv and spectrogram.json beside them. Other commands: "
        "`spec2img audit AUDIO_DIR`, `spec2img synth OUT_DIR`, `spec2img store IMAGES_DIR`.",
    )
    p.add_argument("audio_dir", type=Path, metavar="AUDIO_DIR")
    p.add_argument("images_dir", type=Path, metavar="IMAGES_DIR")
    _add_labels(p)
    g = p.add_argument_group("groups (clips of one group, e.g. one speaker or recording, stay on one side of "
                             "every classify split)")
    g.add_argument("--group-col", metavar="COL", help="labels CSV column naming the recording/speaker of each clip "
                   "(ESC-50 src_file and UrbanSound8K fsID are read without it)")
    g.add_argument("--group-from-name", metavar="REGEX",
                   help="the group from each file name: the regex's first (...) group, e.g. '^[^_]+_([^_]+)_' "
                        "gives 'jackson' for 7_jackson_32.wav; without it each file is its own recording")
    d = from_preset(DEFAULT_PRESET)  # the help shows the default preset's numbers
    s = p.add_argument_group(f"spectrogram (librosa's names; every default comes from --preset, shown for "
                             f"{DEFAULT_PRESET})")
    s.add_argument("--preset", default=DEFAULT_PRESET, metavar="NAME",
                   help=f"{' | '.join(PRESETS)} (default: %(default)s, the AudioSet backbone's front-end, which "
                        "classify fit pairs with that backbone; logmel: the general 44.1 kHz log-mel, called "
                        "'default' before it stopped being the default)")
    s.add_argument("--feature", choices=["logmel", "mfcc"], help=f"(default {d.feature})")
    s.add_argument("--sr", type=int, help=f"resample every clip to this rate, Hz (default {d.sr}; logmel 44100)")
    s.add_argument("--n-fft", type=int, help=f"FFT size, samples (default {d.n_fft}; logmel 2048)")
    s.add_argument("--hop-length", type=int, help=f"frame step, samples (default {d.hop_length}; logmel 512)")
    s.add_argument("--win-length", type=int, help=f"window length, samples (default {d.win_length or 'n_fft'})")
    s.add_argument("--n-mels", type=int, help=f"mel bands = image height (default {d.n_mels})")
    s.add_argument("--fmin", type=float, help=f"lowest frequency, Hz (default {d.fmin:g}; logmel 20)")
    s.add_argument("--fmax", type=float,
                   help=f"highest frequency, Hz (default {'sr/2' if d.fmax is None else f'{d.fmax:g}'}; logmel sr/2)")
    s.add_argument("--top-db", type=float,
                   help="dynamic range drawn, dB below the image's peak (dB presets logmel/imagenet/mfcc; "
                        "default 80; refused with efficientat, whose ln scale has a fixed range)")
    s.add_argument("--n-mfcc", type=int, help="MFCC coefficients with --feature mfcc (default 40)")
    s.add_argument("--mode", choices=["grey", "deltas", "colormap"],
                   help="grey: 1 channel; deltas: log-mel + delta + delta-delta as RGB; colormap: --cmap colours")
    s.add_argument("--cmap", help="matplotlib colormap for --mode colormap (default magma)")
    w = p.add_argument_group("length")
    w.add_argument("--duration", type=float, metavar="SECONDS",
                   help="cut or zero-pad every clip to this length (see --crop)")
    w.add_argument("--crop", choices=["start", "center", "random"], help="where --duration cuts (default center)")
    w.add_argument("--tile", type=float, metavar="SECONDS", help="one image per window of this length")
    w.add_argument("--tile-hop", type=float, metavar="SECONDS", help="step between tiles (default tile/2)")
    w.add_argument("--seed", type=int, help="seed of --crop random (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: all cores)")
    r.add_argument("--strict", action="store_true", help="stop at the first clip that fails")
    r.add_argument("--wait", action="store_true",
                   help="if another run is writing IMAGES_DIR, wait for it instead of stopping")
    _add_follow(r)
    r.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: -j worker processes (default); ray: the same per-clip work on a Ray "
                        "cluster (--address), or a local Ray instance with -j CPUs")
    r.add_argument("--address", metavar="ADDR",
                   help="--engine ray: cluster to join (ray://host:10001, host:6379 or auto); "
                        "every node needs spec2img installed and AUDIO_DIR/IMAGES_DIR at the same paths")
    _add_common(p)
    return p


def _cmd_convert(args) -> int:
    from .api import convert

    if args.jobs is not None and args.jobs < 1:
        raise Spec2ImgError(f"--jobs {args.jobs} must be at least 1")
    if args.address and args.engine != "ray":
        raise Spec2ImgError(f"--address {args.address} needs --engine ray")
    res = convert(
        args.audio_dir, args.images_dir, labels=args.labels, preset=args.preset, jobs=args.jobs,
        feature=args.feature, sr=args.sr, n_fft=args.n_fft, hop_length=args.hop_length, win_length=args.win_length,
        n_mels=args.n_mels, fmin=args.fmin, fmax=args.fmax, top_db=args.top_db, n_mfcc=args.n_mfcc, mode=args.mode,
        cmap=args.cmap, duration=args.duration, crop=args.crop, tile=args.tile, tile_hop=args.tile_hop, seed=args.seed,
        file_col=args.file_col, label_col=args.label_col, fold_col=args.fold_col, group_col=args.group_col,
        group_from_name=args.group_from_name, missing=args.missing, strict=args.strict, progress=not args.quiet,
        engine=args.engine, address=args.address, follow_symlinks=args.follow_symlinks, wait=args.wait,
    )
    log.warning("%s; manifest: %s", res.line, res.manifest)
    return ExitCode.INPUTS_FAILED if res.n_failed else ExitCode.OK


# ------------------------------------------------------------------------------------- audit
def audit_parser() -> argparse.ArgumentParser:
    p = Parser(prog="spec2img audit",
                                description="Per-file duration, rate, channels, levels, clipping (a flat top: "
                                "3+ consecutive full-scale samples, or over 0.1% of samples), silence and DC offset; "
                                "class counts with the verified share. Writes audit.csv, audit_classes.csv and "
                                "audit.html into a folder named 'audit' beside AUDIO_DIR (AUDIO_DIR/../audit), where "
                                "`classify report` of a run on these clips finds and links it.")
    p.add_argument("audio_dir", type=Path, metavar="AUDIO_DIR")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: AUDIO_DIR/../audit, i.e. 'audit' beside AUDIO_DIR)")
    _add_labels(p)
    p.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: all cores)")
    _add_follow(p)
    _add_common(p)
    return p


def _cmd_audit(args) -> int:
    from .audit import audit

    out = args.out or args.audio_dir.resolve().parent / "audit"
    result = audit(args.audio_dir, out_dir=out, labels_csv=args.labels, file_col=args.file_col,
                   label_col=args.label_col, fold_col=args.fold_col, missing=args.missing, jobs=args.jobs,
                   follow_symlinks=args.follow_symlinks)
    log.warning("%s", result.line())
    return ExitCode.INPUTS_FAILED if result.n_failed else ExitCode.OK


# ------------------------------------------------------------------------------------- synth
def synth_parser() -> argparse.ArgumentParser:
    p = Parser(prog="spec2img synth",
                                description="Write a deterministic labelled set of synthetic clips "
                                "(folder per class) for demos and tests.")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    p.add_argument("--per-class", type=int, default=12, help="clips per class (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sr", type=int, default=44100, help="sample rate of the clips, Hz (default %(default)s)")
    _add_common(p)
    return p


def _cmd_synth(args) -> int:
    from .api import synth

    if args.per_class < 1:
        raise Spec2ImgError(f"--per-class {args.per_class} must be at least 1")
    synth(args.out_dir, n_per_class=args.per_class, seed=args.seed, sr=args.sr)
    return 0


# ------------------------------------------------------------------------------------- store
def store_parser() -> argparse.ArgumentParser:
    p = Parser(prog="spec2img store",
                                description="Write IMAGES_DIR/store/: every image of the manifest in one "
                                "memory-mapped file, which classify then reads instead of decoding the PNGs "
                                "into memory (for sets larger than RAM).")
    p.add_argument("images_dir", type=Path, metavar="IMAGES_DIR")
    _add_common(p)
    return p


def _cmd_store(args) -> int:
    from .store import build_store

    if not (args.images_dir / "manifest.csv").is_file():
        raise Spec2ImgError(f"{args.images_dir}: no manifest.csv; pass a folder written by spec2img AUDIO_DIR IMAGES_DIR")
    log.warning("store written: %s", build_store(args.images_dir))
    return 0


COMMANDS = {"audit": (audit_parser, _cmd_audit), "synth": (synth_parser, _cmd_synth),
            "store": (store_parser, _cmd_store)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    make, cmd = COMMANDS.get(argv[0], (convert_parser, _cmd_convert)) if argv else (convert_parser, _cmd_convert)
    if argv and argv[0] in COMMANDS:
        argv = argv[1:]
    args = make().parse_args(argv)
    return run_main(lambda: cmd(args), verbose=args.verbose, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
