"""``classify fit``, ``cv`` and ``lr-find``: their flags (defaults from the library's dataclasses)
and the calls into :mod:`classify.api`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

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

    from ..config import AugmentConfig, TrainConfig

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
    from ..config import AUTO_ARCH
    from ..models.archs import ARCHS

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
    from ..config import HEAD_ONLY_BELOW

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
    g.add_argument("--lr-groups", type=int, default=d["lr_groups"], metavar="N",
                   help="unfrozen: the body cut into N-1 groups by depth plus the head, rates spread "
                        f"geometrically (more groups: layer-wise decay; default {d['lr_groups']})")
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
    g.add_argument("--freeze-bn", action="store_true", default=d["freeze_bn"],
                   help="keep the body's BatchNorm statistics at their pretrained values while fine-tuning "
                        "(its layers in eval mode; their scale and shift still train)")
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
    g.add_argument("--mixstyle", type=float, default=d["aug_mixstyle"], metavar="P",
                   help="frequency-wise MixStyle on a share P of the training examples (EfficientAT's "
                        f"freq-mixstyle; default {_show(d['aug_mixstyle'])})")
    g.add_argument("--stretch", type=float, default=d["aug_stretch"], metavar="S",
                   help="stretch each training crop's time axis by a factor in [1-S, 1+S] (speaking rate; "
                        f"default {_show(d['aug_stretch'])})")
    g.add_argument("--no-augment", action="store_true",
                   help="no masks, roll, mixup, MixStyle or stretch (overrides the above)")
    p.add_argument("--export-learner", action="store_true", help="also write learner.pkl (fastai)")


#: Parsed arguments that are not options of the API call (argparse's own, and the verbosity flags).
_NOT_OPTIONS = ("command", "verbose")


def _options(args, *, drop=()) -> dict:
    """The parsed flags as the API's keyword arguments (flag ``--freeze-epochs`` -> ``freeze_epochs``)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS and k not in drop}


def _train_config(args):
    """The TrainConfig the API builds from these flags (:func:`classify.options.train_config`)."""
    from ..options import train_config

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
    from .. import api
    from ..training.distributed import is_main

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
    from .. import api

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
    from .. import api

    print(f"{api.lr_find(**_options(args)):.3g}")
    return 0


