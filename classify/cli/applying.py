"""``classify report``, ``predict``, ``export``, ``tag``, ``serve`` and ``demo``: using a trained run."""

from __future__ import annotations

import logging
from pathlib import Path

from spec2img.exitcodes import ExitCode

log = logging.getLogger("classify")


# ------------------------------------------------------------------------------------------ tag
def _add_tag(sub) -> None:
    p = sub.add_parser("tag", help="AudioSet tags of audio files from the pretrained EfficientAT model")
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("--top-k", type=int, default=5, help="tags per file (default 5)")
    p.add_argument("--weights", help="EfficientAT checkpoint mn04_as_mAP_432.pt (else "
                   "$SPEC2IMG_EFFICIENTAT_WEIGHTS, the torch cache, or a download)")
    p.add_argument("--out", metavar="FILE.csv", help="write all tags to this CSV (source,rank,label,probability,index,mid)")


def _cmd_tag(args) -> int:
    from ..prediction.tag import format_tags, tag, write_tags

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
    from .. import api

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
    from .. import api
    from ..errors import ClassifyError
    from ..prediction.ensemble import split_runs
    from ..prediction.results import (
        output_path,
        write_csv,
        write_kaggle,
        write_timeline,
    )
    from ..runfolder import check_run_path

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
    from .. import api

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
    from ..errors import ClassifyError
    from ..serve import ServeConfig, serve

    config = ServeConfig(host=args.host, port=args.port, window=args.window, hop=args.hop, top_k=args.top_k,
                         max_mb=args.max_mb, max_seconds=args.max_seconds, workers=args.workers,
                         threads=args.threads, unknown_threshold=args.unknown_threshold)
    if args.teach is not None:
        from ..teach import TeachConfig, serve_teach

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
    from ..demo import run_demo

    r = run_demo(args.out, quiet=args.quiet)
    acc = r.metrics.get("accuracy", float("nan"))
    report = r.report.resolve()
    print(f"validation accuracy {acc:.3f}; held-out clips labelled right: {r.new_correct}/{r.new_total}\n"
          f"predictions: {r.predictions}\nrun folder:  {r.run_dir}\nreport:      {report}\n"
          f"open it:     python -m webbrowser {report.as_uri()}")
    return 0


