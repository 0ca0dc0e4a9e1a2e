"""Which EfficientNet-Lite0 block transfers best to a logistic head: the sweep behind ``--cut 2``.

Every block's output (and the 1280-channel head) of the ImageNet network, pooled three ways
(mean over time and frequency; mean over frequency then max+mean over time; GeM, p=3), scored
with ``StandardScaler -> LogisticRegression`` on the esc50-dev folds of ``accuracy.py``. The
choice it supports was made on the folds it is scored on (README).

Usage::

    uv run python benchmarks/probe_layers.py /tmp/bench/esc50_img --input-height 224
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from classify.models.archs import get_arch
from classify.data.imageset import load_image_set
from classify.models.classifier import build_model, gem

from accuracy import fold_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--input-height", type=int, default=224)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    ds = load_image_set(args.images)
    folds = fold_ids(ds, args.folds, False)
    y = ds.targets.argmax(1)
    torch.manual_seed(0)
    m = build_model(get_arch("efficientnet_lite0"), n_classes=len(ds.classes), in_channels=ds.cfg.channels,
                    pretrained=True, input_height=args.input_height).eval()
    net = m.body.net
    feats: dict[tuple[str, str], list[np.ndarray]] = {}
    t = time.perf_counter()
    with torch.no_grad():
        for img in ds.images:
            x = net._swish(net._bn0(net._conv_stem(m.prepare(img[None].float() / 255))))
            outs = {}
            for i, block in enumerate(net._blocks):
                x = block(x)
                outs[f"block{i}"] = x
            outs["head1280"] = net._swish(net._bn1(net._conv_head(x)))
            for name, v in outs.items():
                f = v.mean(2)[0]
                for pool, vec in (("mean", v.mean((2, 3))[0]), ("meanmax", torch.cat([f.amax(1), f.mean(1)])),
                                  ("gem", gem(v)[0])):
                    feats.setdefault((name, pool), []).append(vec.numpy())
    print(f"features of {len(ds.images)} images in {time.perf_counter() - t:.0f} s")
    rows = []
    for (name, pool), vecs in feats.items():
        X = np.stack(vecs)
        accs = []
        for k in range(1, args.folds + 1):
            tr, va = folds != k, folds == k
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X[tr], y[tr])
            accs.append(float((clf.predict(X[va]) == y[va]).mean()))
        rows.append((float(np.mean(accs)), name, pool, X.shape[1], accs))
    for acc, name, pool, dim, accs in sorted(rows, reverse=True)[:args.top]:
        print(f"{acc:.3f}  {name:9s} {pool:8s} {dim:5d}  " + " ".join(f"{a:.3f}" for a in accs))


if __name__ == "__main__":
    main()
