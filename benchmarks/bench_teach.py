"""Teach mode's speed: Train after the last example, and the first live label after Train.

3 classes x 8 examples of 2 s (seeded synthetic sounds, spec2img.synth's drawers) are posted to the
teach API in-process (features computed as each arrives, as in the page); then Train is timed
(POST /api/teach/train: render new examples, head-only fit on the cached features, out-of-fold
unknown threshold, run folder written, model swapped in), then the first live label (POST
/api/predict with a 2-s window). Repeated ``--repeats`` times, one example added before each
Train. The report is built after each Train in the background as in ``classify serve --teach``;
here it is waited for before the next Train, so it does not compete with the timing.

    uv run python benchmarks/bench_teach.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, environment  # noqa: E402

SR = 16000
KINDS = ("tone", "chirp", "noise_burst", "click_train", "hum", "bell")


def clip(kind: str, i: int, seconds: float = 2.0) -> bytes:
    from spec2img.synth import make_clip, wav_bytes

    y, _ = make_clip(kind, np.random.default_rng([7, KINDS.index(kind), i]), sr=SR)
    n = int(seconds * SR)
    return wav_bytes(np.resize(y, n) if len(y) < n else y[:n], sr=SR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the target's 2 cores)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from fastapi.testclient import TestClient

    from classify.serve import ServeConfig, create_app
    from classify.teach import TeachConfig, make_teacher
    from classify.teach import routes

    torch.set_num_threads(args.threads)
    done: list[threading.Event] = []
    build = routes.build_report_quietly

    def tracked(run_dir):  # the report thread's work, marked done, to wait for it between Trains
        ev = threading.Event()
        done.append(ev)
        try:
            build(run_dir)
        finally:
            ev.set()

    routes.build_report_quietly = tracked
    octet = {"Content-Type": "application/octet-stream"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        teacher = make_teacher(Path(tmp) / "session", ServeConfig(window=2.0, hop=1.0), TeachConfig())
        start_s = time.perf_counter() - t0
        app = create_app(teacher.engine)
        routes.add_teach_routes(app, teacher)
        client = TestClient(app)
        add_s = []
        for name in ("tone", "chirp", "click_train"):
            client.post("/api/teach/classes", json={"name": name})
            for i in range(8):
                t = time.perf_counter()
                r = client.post(f"/api/teach/examples?label={name}", content=clip(name, i), headers=octet)
                assert r.status_code == 200, r.text
                add_s.append(time.perf_counter() - t)
        train_s, live_s, server_s = [], [], []
        probe = clip("chirp", 500)
        for k in range(args.repeats + 1):  # the first Train also imports the fit's libraries: reported apart
            if k:
                client.post("/api/teach/examples?label=tone", content=clip("tone", 100 + k), headers=octet)
            time.sleep(0.5)
            for ev in done:
                ev.wait()
            t = time.perf_counter()
            r = client.post("/api/teach/train")
            assert r.status_code == 200, r.text
            train = time.perf_counter() - t
            t = time.perf_counter()
            out = client.post("/api/predict?spectrogram=true", content=probe, headers=octet).json()
            live = time.perf_counter() - t
            print(f"train {k}: {train:.2f} s (server {r.json()['seconds']:.2f} s), first live label {live:.3f} s "
                  f"-> {out['label']}", flush=True)
            if k:
                train_s.append(train)
                live_s.append(live)
                server_s.append(r.json()["seconds"])
            else:
                first = train
        time.sleep(0.5)
        for ev in done:
            ev.wait()
    result = {"benchmark": "teach", "threads": args.threads, "examples": "3 classes x 8 x 2 s (+1 per Train)",
              "session_start_s": round(start_s, 2), "add_example_median_s": round(statistics.median(add_s), 3),
              "first_train_s": round(first, 2), "train_median_s": round(statistics.median(train_s), 2),
              "train_s": [round(x, 2) for x in train_s], "first_live_label_median_s": round(statistics.median(live_s), 3),
              **environment()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "teach.jsonl", "a") as fh:
        fh.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("versions",)}))


if __name__ == "__main__":
    main()
