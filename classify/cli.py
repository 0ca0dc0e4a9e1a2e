"""``classify``: thin CLI over the classify library. Parse, build a config, call, map errors.

Each subcommand has an ``_add_<name>(subparsers)`` that declares its flags and a
``_cmd_<name>(args) -> int`` that only calls the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spec2img.cli import Parser, add_verbosity, run_main
from spec2img.exitcodes import ExitCode

log = logging.getLogger("classify")


# ------------------------------------------------------------------------------- shared flags
def _lr(value: str):
    if value == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a learning rate; use e.g. 3e-3 or 'auto'") from None


def _seconds(value: str):
    if value in ("full", "none", "0"):
        return None
    if value == "auto":  # from the training images' widths (classify.config.auto_crop_seconds)
        return "auto"
    return float(value)


def _optional_float(value: str):
    if value in ("auto", "none"):
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; use e.g. 1.0 or 'auto'") from None


def _abs_path(value: str) -> str:
    return str(Path(value).expanduser().absolute())


def _defaults():
    """TrainConfig's and AugmentConfig's field defaults: the one source of the CLI's defaults."""
    import dataclasses

    from .config import AugmentConfig, TrainConfig

    out = {f.name: f.default for f in dataclasses.fields(TrainConfig)
           if f.default is not dataclasses.MISSING}
    out.update({f"aug_{f.name}": f.default for f in dataclasses.fields(AugmentConfig)})
    return out


def _show(value) -> str:
    """A default as a person writes it in --help."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _add_model_flags(g, d: dict) -> None:
    from .config import AUTO_ARCH
    from .models.archs import ARCHS

    g.add_argument("--arch", default=d["arch"], metavar="NAME",
                   help=f"backbone: {AUTO_ARCH}, {', '.join(ARCHS)} or timm:<name> (default {d['arch']}: "
                        "efficientat_mn04, AudioSet-pretrained, for images of spec2img's default preset, "
                        "else efficientnet_lite0, ImageNet)")
    g.add_argument("--weights", metavar="FILE",
                   help="local state dict of the backbone (default: the weights shipped or cached for --arch)")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="random initialisation")
    g.add_argument("--input-height", type=int, metavar="ROWS",
                   help="resize the whole frequency axis to this many rows (default: native height)")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by fit and cv (they build a TrainConfig); defaults come from TrainConfig."""
    from .config import HEAD_ONLY_BELOW

    d = _defaults()
    p.add_argument("images", help="spec2img output folder (images + manifest.csv + spectrogram.json)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to write (default: a new folder under runs/)")
    g = p.add_argument_group("model")
    _add_model_flags(g, d)
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--fine-tune", dest="head_only", action="store_false", default=None,
                      help="fine-tune the whole network with fastai (default without pretrained weights; "
                           f"from {HEAD_ONLY_BELOW} clips in the median class the probe and the fine-tune are "
                           "scored on an inner split of the training clips and the better kept)")
    mode.add_argument("--head-only", dest="head_only", action="store_true", default=None,
                      help="no fine-tuning: logistic regression on the frozen backbone's pooled features "
                           f"(seconds on CPU; the default below {HEAD_ONLY_BELOW} clips in the median class)")
    g.add_argument("--head-c", type=_optional_float, default=d["head_c"], metavar="C",
                   help="--head-only: inverse L2 strength of the logistic regression, or 'auto' to choose "
                        f"it on an inner split of the training clips (default {_show(d['head_c'])})")
    g.add_argument("--cut", type=int, default=d["cut"], metavar="N",
                   help="drop the backbone's last N stages (default: 0 when fine-tuning; with --head-only "
                        "the arch's choice, 2 for efficientnet_lite0)")
    g.add_argument("--dropout", type=float, default=d["dropout"],
                   help=f"dropout before the classifier (default {_show(d['dropout'])})")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, default=d["epochs"],
                   help=f"unfrozen one-cycle epochs (default {d['epochs']})")
    g.add_argument("--freeze-epochs", type=int, default=d["freeze_epochs"],
                   help=f"frozen-body epochs first (default {d['freeze_epochs']})")
    g.add_argument("--lr", type=_lr, default=d["lr"],
                   help=f"max learning rate, or 'auto' for lr_find's suggestion (default {_show(d['lr'])})")
    g.add_argument("--unfrozen-lr", type=float, default=d["unfrozen_lr"],
                   help="max learning rate of the unfrozen epochs (the head's; default: lr/2)")
    g.add_argument("--lr-mult", type=float, default=d["lr_mult"],
                   help=f"unfrozen: early body layers get UNFROZEN_LR/LR_MULT (default {_show(d['lr_mult'])})")
    g.add_argument("--lr-find-iters", type=int, default=d["lr_find_iters"],
                   help=f"lr_find mini-batches with --lr auto (default {d['lr_find_iters']})")
    g.add_argument("--wd", type=float, default=d["wd"], help=f"weight decay (default {_show(d['wd'])})")
    g.add_argument("--bs", type=int, default=d["bs"], help=f"batch size (default {d['bs']})")
    g.add_argument("--gpu-bs", type=int, default=d["gpu_bs"],
                   help=f"batch size on a GPU, at most n_train/8, learning rates x sqrt(batch/bs), recorded in "
                        f"train.json; 0 = --bs there too (default {d['gpu_bs']})")
    g.add_argument("--patience", type=int, default=d["patience"],
                   help="early-stopping patience in epochs, judged on an inner split of the training "
                        f"clips, never the scored one; 0 = a fixed schedule (default {d['patience']})")
    g.add_argument("--monitor", default=d["monitor"], choices=("valid_loss", "accuracy", "lwlrap"),
                   help=f"what --patience and --restore-best watch, on the inner split (default {d['monitor']})")
    g.add_argument("--restore-best", action=argparse.BooleanOptionalAction, default=d["restore_best"],
                   help="keep the best epoch's weights, judged on the inner split "
                        f"(default {_show(d['restore_best'])}: the last epoch's)")
    g.add_argument("--lp-ft", action=argparse.BooleanOptionalAction, default=d["lp_ft"],
                   help="LP-FT: start a linear head from the logistic probe on the frozen features, skip "
                        f"the frozen epochs, then fine-tune everything (default {_show(d['lp_ft'])})")
    g.add_argument("--ema", dest="ema_epochs", type=float, default=d["ema_epochs"], metavar="EPOCHS",
                   help="keep an exponential moving average of the weights over about EPOCHS epochs of "
                        f"the unfrozen phase and save that; 0 = off (default {_show(d['ema_epochs'])})")
    g.add_argument("--seed", type=int, default=d["seed"],
                   help=f"seed for splits, init, crops and augmentation (default {d['seed']})")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=d["bf16"],
                   help="bfloat16 autocast for CPU training (default: on when the CPU has native bfloat16, "
                        "AVX512-BF16 or AMX)")
    g = p.add_argument_group("data")
    g.add_argument("--crop-seconds", type=_seconds, default=d["crop_seconds"],
                   help="training crop length in seconds, 'full' for whole images, 'auto' from the "
                        f"images' widths (default {_show(d['crop_seconds'])})")
    g.add_argument("--valid-pct", type=float, default=d["valid_pct"],
                   help=f"validation share, grouped by recording (default {_show(d['valid_pct'])})")
    g.add_argument("--valid-fold", type=int, metavar="K", help="validate on manifest fold K")
    g.add_argument("--valid-csv", metavar="CSV", help="validate on the clips listed in this CSV (column source/filename)")
    g.add_argument("--verified-only", action="store_true", help="train on manually verified clips only")
    g.add_argument("--unverified-weight", type=float, default=d["unverified_weight"],
                   help=f"loss weight of unverified clips, e.g. 0.5 (default {_show(d['unverified_weight'])})")
    g.add_argument("--valid-unverified", action="store_true", help="also validate on unverified clips")
    g.add_argument("--relabel", metavar="CSV", type=_abs_path,
                   help="give the clips in CSV (columns file, suggested; e.g. an edited suspect_labels.csv "
                        "from classify cv) the label in 'suggested'; recorded in train.json")
    g.add_argument("--drop", metavar="CSV", type=_abs_path,
                   help="leave out the clips listed in CSV (column file), e.g. suspect_labels.csv; "
                        "recorded in train.json")
    g = p.add_argument_group("augmentation")
    g.add_argument("--mixup", type=float, default=d["aug_mixup"],
                   help=f"mixup Beta(a, a); 0 disables (default {_show(d['aug_mixup'])})")
    g.add_argument("--time-masks", type=int, default=d["aug_time_masks"],
                   help=f"SpecAugment time masks per example (default {d['aug_time_masks']})")
    g.add_argument("--freq-masks", type=int, default=d["aug_freq_masks"],
                   help=f"SpecAugment frequency masks per example (default {d['aug_freq_masks']})")
    g.add_argument("--mask-frac", type=float, default=d["aug_time_mask_frac"],
                   help=f"longest mask as a share of the axis (default {_show(d['aug_time_mask_frac'])})")
    g.add_argument("--no-roll", dest="roll", action="store_false", default=d["aug_roll"],
                   help="no random circular time shift")
    g.add_argument("--no-augment", action="store_true", help="no masks, roll or mixup (overrides the above)")
    p.add_argument("--export-learner", action="store_true", help="also write learner.pkl (fastai)")


#: Parsed arguments that are not options of the API call (argparse's own, and the verbosity flags).
_NOT_OPTIONS = ("command", "verbose")


def _options(args, *, drop=()) -> dict:
    """The parsed flags as the API's keyword arguments (flag ``--freeze-epochs`` -> ``freeze_epochs``)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS and k not in drop}


def _train_config(args):
    """The TrainConfig the API builds from these flags (:func:`classify.options.train_config`)."""
    from .options import train_config

    return train_config(**_options(args, drop=("distributed", "folds", "predefined_folds", "holdout_pct")))


# ------------------------------------------------------------------------------------------ fit
def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="fine-tune a CNN on a spec2img image folder")
    _add_train_flags(p)
    p.add_argument("--distributed", type=int, metavar="N", default=None,
                   help="data-parallel fine-tuning on N processes of this machine (fastai DDP via accelerate; "
                        "gloo on CPU, one GPU each with CUDA); --bs stays the global batch. Several machines: "
                        "torchrun/accelerate launch -m classify.cli fit ... --out RUN_DIR")


def _cmd_fit(args) -> int:
    from . import api
    from .training.distributed import is_main

    run = api.fit(**_options(args))
    if is_main():  # under torchrun / accelerate launch, rank 0 says where the run is
        print(run.path)
    return 0


# ------------------------------------------------------------------------------------------- cv
def _add_cv(sub) -> None:
    p = sub.add_parser("cv", help="cross-validate: one run per fold, out-of-fold predictions, fold ensemble")
    _add_train_flags(p)
    p.add_argument("--folds", type=int, default=5, help="grouped stratified folds (default 5)")
    p.add_argument("--predefined-folds", action="store_true", help="use the manifest's fold column")
    p.add_argument("--holdout-pct", type=float, default=0.0,
                   help="hold out this share of clips (grouped) to score the fold ensemble (default 0: none)")


def _cmd_cv(args) -> int:
    from . import api

    print(api.cv(**_options(args)).path)
    return 0


# -------------------------------------------------------------------------------------- lr-find
def _add_lr_find(sub) -> None:
    p = sub.add_parser("lr-find", help="fastai lr_find: suggested learning rate + lr_find.png",
                       description="Run fastai's lr_find on the training part of IMAGES and print the "
                                   "suggested learning rate; writes lr_find.json and lr_find.png.")
    d = _defaults()
    p.add_argument("images", help="spec2img output folder (images + manifest.csv + spectrogram.json)")
    p.add_argument("--out", metavar="RUN_DIR", help="folder for lr_find.json/png (default: a new folder under runs/)")
    _add_model_flags(p, d)
    p.add_argument("--lr-find-iters", type=int, default=d["lr_find_iters"],
                   help=f"mini-batches to try (default {d['lr_find_iters']})")
    p.add_argument("--bs", type=int, default=d["bs"], help=f"batch size (default {d['bs']})")
    p.add_argument("--crop-seconds", type=_seconds, default=d["crop_seconds"],
                   help=f"training crop length in seconds, 'full' or 'auto' (default {_show(d['crop_seconds'])})")
    p.add_argument("--seed", type=int, default=d["seed"], help=f"seed (default {d['seed']})")


def _cmd_lr_find(args) -> int:
    from . import api

    print(f"{api.lr_find(**_options(args)):.3g}")
    return 0


# ------------------------------------------------------------------------------------------ tag
def _add_tag(sub) -> None:
    p = sub.add_parser("tag", help="AudioSet tags of audio files from the pretrained EfficientAT model")
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("--top-k", type=int, default=5, help="tags per file (default 5)")
    p.add_argument("--weights", help="EfficientAT checkpoint mn04_as_mAP_432.pt (else "
                   "$SPEC2IMG_EFFICIENTAT_WEIGHTS, the torch cache, or a download)")
    p.add_argument("--out", metavar="FILE.csv", help="write all tags to this CSV (source,rank,label,probability,index,mid)")


def _cmd_tag(args) -> int:
    from .prediction.tag import format_tags, tag, write_tags

    df = tag(args.audio, top_k=args.top_k, weights=args.weights)
    print("\n".join(format_tags(df)))
    if args.out:
        write_tags(df, args.out)
    return ExitCode.INPUTS_FAILED if df.attrs.get("skipped") else ExitCode.OK


# --------------------------------------------------------------------------------------- report
def _add_report(sub) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report/index.html: an interactive interpretation report")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `classify fit` or `cv`")
    p.add_argument("-o", "--out", metavar="DIR", help="output folder (default RUN_DIR/report)")
    p.add_argument("--images-dir", help="spec2img images folder, if not where train.json says")
    p.add_argument("--audio-dir", help="audio folder the manifest's sources are relative to")
    p.add_argument("--worst", "--top-n", dest="top_n", type=int, default=50, metavar="N",
                   help="worst validation items listed (default 50; --top-k is the labels kept per file "
                        "elsewhere, so this count has its own name)")
    p.add_argument("--max-per-cell", type=int, default=12, help="clips kept per confusion cell (default 12)")
    p.add_argument("--audio", choices=("copy", "link", "none"), default="copy",
                   help="copy referenced clips into the report (default), link them relatively, or none")
    p.add_argument("--max-audio-mb", type=float, default=100.0, help="budget for copied audio (default 100)")
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE scatter")
    p.add_argument("--force", action="store_true",
                   help="replace an existing report even if this build finds no thumbnails or audio where it "
                        "had them (otherwise: error, exit 2, the old report kept)")


def _cmd_report(args) -> int:
    from . import api

    run = api.load(args.run_dir)
    print(run.report(out=args.out, images_dir=args.images_dir, audio_dir=args.audio_dir, worst=args.top_n,
                     max_per_cell=args.max_per_cell, audio=args.audio, max_audio_mb=args.max_audio_mb,
                     tsne=not args.no_tsne, force=args.force))
    return 0


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
    p.add_argument("audio", type=Path, nargs="+",
                   help="audio files and/or folders (searched recursively); run folders listed before "
                        "the audio are ensembled with RUN_DIR")
    p.add_argument("--run", type=Path, action="append", default=[], metavar="RUN_DIR",
                   help="another run to ensemble with (repeatable)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.csv",
                   help="per-file CSV: file, label_1, prob_1, ... (default predictions.csv, or "
                        "predictions-1.csv, ... when that exists: a file you did not name is never replaced)")
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
    p.add_argument("--follow-symlinks", action="store_true",
                   help="also read symlinks that lead outside a given folder (links inside it are followed)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: batches of files on a Ray cluster (--address) or a local Ray instance, with "
                        "the ONNX export (implies --onnx; workers need classify installed, same audio paths)")
    p.add_argument("--address", metavar="ADDR", help="--engine ray: cluster to join (ray://host:10001, host:6379, auto)")
    p.add_argument("--unknown-threshold", type=float, metavar="P",
                   help="call a file 'unknown' when its top probability is below P (default: the run's own, "
                        "openset.json; 0: never)")


def _cmd_predict(args) -> int:
    from . import api
    from .errors import ClassifyError
    from .prediction.ensemble import split_runs
    from .prediction.results import output_path, write_csv, write_kaggle, write_timeline
    from .runfolder import check_run_path

    for run in (args.run_dir, *args.run):
        check_run_path(run)
    more_runs, audio = split_runs(args.audio)  # RUN_A RUN_B AUDIO...: leading run folders ensemble
    if not audio:
        raise ClassifyError("no audio given after the run folder(s); usage: classify predict RUN_DIR AUDIO...")
    result = api.predict([args.run_dir, *more_runs, *args.run], audio, top_k=args.top_k, aggregate=args.aggregate,
                         tta=args.tta, timeline=args.timeline is not None, batch_size=args.bs,
                         backend="onnx" if args.onnx else "torch", follow_symlinks=args.follow_symlinks,
                         engine=args.engine, address=args.address, unknown_threshold=args.unknown_threshold)
    out, note = output_path(args.out, result)  # nothing written when every input failed
    if note:
        log.warning("%s", note)
    written = [write_csv(result, out)]
    if args.kaggle:
        written.append(write_kaggle(result, args.kaggle))
    if args.timeline:
        written.append(write_timeline(result, args.timeline))
    print(f"{result.line()} -> {', '.join(map(str, written))}")
    return ExitCode.INPUTS_FAILED if result.failures else ExitCode.OK


# --------------------------------------------------------------------------------------- export
def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to ONNX (+ JSON with classes and settings)")
    p.add_argument("run_dir", type=Path, help="run folder from classify fit (a cv run: every fold)")
    p.add_argument("--onnx", action="store_true", default=True, help="export to ONNX (the default and only format)")
    p.add_argument("--out", type=Path, metavar="FILE", help="output .onnx file (default RUN_DIR/model.onnx)")


def _cmd_export(args) -> int:
    from . import api

    for out in api.export(args.run_dir, args.out):
        print(f"wrote {out} and {out.name}.json")
    return 0


# ---------------------------------------------------------------------------------------- serve
def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve", help="local web page + JSON API: label the microphone live, or uploaded files",
        description="Serve a trained model on a local web page (live microphone labels, uploads with a "
                    "timeline) and a JSON API (POST /api/predict, GET /api/model). Uses the ONNX export "
                    "(made once, in a child process, when a run folder has none): torch is never loaded.")
    p.add_argument("models", type=Path, nargs="*", metavar="RUN_DIR|MODEL.onnx",
                   help="run folder(s), a cv run folder or .onnx export(s); several = an ensemble "
                        "(with --teach: at most one run folder whose examples and classes to start from)")
    p.add_argument("--teach", type=Path, nargs="?", const=Path("teach-session"), metavar="SESSION_DIR",
                   help="teach mode: record or upload examples per class in the page, Train, and the live view "
                        "uses the new model; examples, labels.csv and run folders go to SESSION_DIR "
                        "(default ./teach-session)")
    p.add_argument("--example-seconds", type=float, default=2.0,
                   help="--teach: length of a recorded example and of the model's window (default 2)")
    p.add_argument("--unknown-threshold", type=float, metavar="P",
                   help="label 'unknown' when the top probability is below P (default: the run's own; 0: never)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--window", type=float, default=4.0, help="seconds of microphone audio per live request (default 4)")
    p.add_argument("--hop", type=float, default=1.0, help="seconds between live requests (default 1)")
    p.add_argument("--top-k", type=int, default=5, help="labels shown per window or file (default 5)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest upload accepted, in MB (default 50)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="longest upload accepted (default 600 s)")
    p.add_argument("--workers", type=int, default=0, help="requests scored at once (default: one per CPU core)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model call (default 1)")


def _cmd_serve(args) -> int:
    from .errors import ClassifyError
    from .serve import ServeConfig, serve

    config = ServeConfig(host=args.host, port=args.port, window=args.window, hop=args.hop, top_k=args.top_k,
                         max_mb=args.max_mb, max_seconds=args.max_seconds, workers=args.workers,
                         threads=args.threads, unknown_threshold=args.unknown_threshold)
    if args.teach is not None:
        from .teach import TeachConfig, serve_teach

        if len(args.models) > 1:
            raise ClassifyError("--teach starts from at most one run folder")
        serve_teach(args.teach, config, TeachConfig(example_seconds=args.example_seconds),
                    start_from=args.models[0] if args.models else None)
        return 0
    if not args.models:
        raise ClassifyError("give a run folder or .onnx model to serve, or --teach to teach one in the page")
    serve(args.models, config)
    return 0


# ----------------------------------------------------------------------------------------- demo
def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline with its defaults on synthetic clips, offline (about a minute on CPU)")
    p.add_argument("out", type=Path, nargs="?", default=Path("demo"), help="output folder (default ./demo)")


def _cmd_demo(args) -> int:
    from .demo import run_demo

    r = run_demo(args.out, quiet=args.quiet)
    acc = r.metrics.get("accuracy", float("nan"))
    report = r.report.resolve()
    print(f"validation accuracy {acc:.3f}; held-out clips labelled right: {r.new_correct}/{r.new_total}\n"
          f"predictions: {r.predictions}\nrun folder:  {r.run_dir}\nreport:      {report}\n"
          f"open it:     python -m webbrowser {report.as_uri()}")
    return 0


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
