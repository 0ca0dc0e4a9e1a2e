"""How well the unknown threshold separates known from unknown sounds, on esc50-dev, classes held out.

For each of ``--splits`` disjoint groups of held-out classes (5 of esc50-dev's 25 by default): the
head-only model (frozen AudioSet mn04 features, :func:`classify.training.headonly.fit_logistic`) is
fitted on the other classes' clips, 3 of 4 grouped folds (``--folds``, each in turn); its unknown threshold is chosen exactly as
``classify fit --head-only`` chooses it (:func:`classify.training.openset_fit.calibrate`: out-of-fold
scores of those training clips only); then it scores the known classes' clips of the remaining fold and every clip
of the held-out classes (never seen). Reported: AUROC known vs unknown of the clip score (highest
class probability), the false-reject rate of known clips and the false-accept rate of unknown
clips at the chosen threshold, and the closed-set accuracy on those known clips.

    uv run python benchmarks/bench_openset.py /work/bench/esc50_eat
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, environment  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, help="esc50-dev rendered with the default (efficientat) preset")
    ap.add_argument("--held-out", type=int, default=5, help="classes held out per split (default 5)")
    ap.add_argument("--splits", type=int, default=5, help="disjoint held-out groups (default 5)")
    ap.add_argument("--folds", type=int, default=4, help="grouped folds of the known clips (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from classify.config import TrainConfig
    from classify.data.imageset import crop_width, load_image_set
    from classify.scoring import openset
    from classify.training.headonly import fit_logistic, frozen_model, probabilities, window_features
    from classify.training.openset_fit import calibrate, clip_mean

    torch.set_num_threads(2)
    ds = load_image_set(args.images)
    cfg = TrainConfig(images=str(args.images), arch="efficientat_mn04", head_only=True).resolved(ds)
    width = crop_width(ds.cfg, cfg.crop_seconds, ds.max_width)
    t0 = time.perf_counter()
    X, owner = window_features(frozen_model(cfg, ds.cfg, len(ds.classes)), ds.images, width=width)
    embed_s = time.perf_counter() - t0
    table = ds.table
    clip = table["clip"].to_numpy()[owner]
    group = table["group"].astype(str).to_numpy()[owner]
    fold = table["fold"].to_numpy()[owner]
    label = ds.targets.argmax(1)[owner]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(ds.classes))
    from classify.data.splits import group_kfold

    rows = []
    for s in range(args.splits):
        held = set(order[s * args.held_out:(s + 1) * args.held_out].tolist())
        known = [c for c in range(len(ds.classes)) if c not in held]
        remap = {c: i for i, c in enumerate(known)}
        is_known = np.isin(label, known)
        unknown = ~is_known
        kc, first = np.unique(clip[is_known], return_index=True)
        kfold = group_kfold(label[is_known][first], group[is_known][first], n_splits=args.folds, seed=args.seed)
        fold_of = dict(zip(kc, kfold))
        wfold = np.array([fold_of.get(c, -2) for c in clip])
        for f in range(args.folds):
            train = is_known & (wfold != f) & (wfold != -2)
            test_known = is_known & (wfold == f)
            Y = np.zeros((int(train.sum()), len(known)))
            Y[np.arange(len(Y)), [remap[c] for c in label[train]]] = 1
            found = calibrate(X[train], Y, clip[train], group[train], C=cfg.head_c, seed=args.seed,
                              head=(fit_logistic, probabilities))
            shift, scale, W, b = fit_logistic(X[train], Y, multi_label=False, C=cfg.head_c, seed=args.seed)

            def score(mask):
                return clip_mean(probabilities((X[mask] - shift) / scale, W, b, multi_label=False), clip[mask])

            ids_k, pk = score(test_known)
            _, pu = score(unknown)
            truth = np.array([remap[label[np.flatnonzero(clip == i)[0]]] for i in ids_k])
            sk, su = openset.max_scores(pk), openset.max_scores(pu)
            rows.append({
                "held_out": [ds.classes[c] for c in sorted(held)], "fold": f, "threshold": found.threshold,
                "auroc": openset.auroc(sk, su), "false_reject": openset.false_reject_rate(sk, found.threshold),
                "false_accept": openset.false_accept_rate(su, found.threshold),
                "closed_accuracy": float((pk.argmax(1) == truth).mean()),
                "n_known_test": int(len(sk)), "n_unknown": int(len(su)), "n_calibration": found.n_known,
            })
            print(json.dumps(rows[-1]), flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("auroc", "false_reject", "false_accept",
                                                              "closed_accuracy", "threshold")}
    result = {"benchmark": "openset", "images": str(args.images), "held_out": args.held_out,
              "splits": args.splits, "folds": args.folds, "seed": args.seed, "score": "highest class probability (clip mean)",
              "embed_seconds": round(embed_s, 2), "mean": mean, "rows": rows, **environment()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "openset.jsonl", "a") as fh:
        fh.write(json.dumps(result) + "\n")
    print("mean:", json.dumps(mean))


if __name__ == "__main__":
    main()
