"""spec2img.progress: plain lines with rate and a measured ETA off a terminal; silent under -q."""

from __future__ import annotations

import logging

from spec2img import progress as P


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_lines_report_rate_and_an_eta_only_once_measured(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(P.time, "perf_counter", clock)
    caplog.set_level(logging.INFO, logger=P.log.name)
    bar = P.Progress(10, unit="clip", desc="spec2img", every=0.0, min_items=3, min_seconds=60)
    clock.t += 0.5
    bar.update()  # 1 clip in 0.5 s: a rate, but no ETA from one cold item
    clock.t += 0.5
    bar.update(2)  # 3 clips in 1 s: 3 clips/s, 7 left -> ETA 2 s
    clock.t += 2.0
    bar.update(7)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["spec2img: 1/10 clips, 2.0 clips/s",
                     "spec2img: 3/10 clips, 3.0 clips/s, ETA 2 s",
                     "spec2img: 10/10 clips, 3.3 clips/s, done in 3.0 s"]


def test_lines_are_throttled(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(P.time, "perf_counter", clock)
    caplog.set_level(logging.INFO, logger=P.log.name)
    bar = P.Progress(100, unit="file", every=10.0)
    for _ in range(99):
        clock.t += 0.05
        bar.update()
    bar.update()
    assert len(caplog.records) == 1 and "100/100 files" in caplog.records[0].getMessage()


def test_quiet_logging_silences_it(caplog):
    caplog.set_level(logging.WARNING)
    bar = P.Progress(3, every=0.0)
    assert not bar.enabled
    bar.update(3)
    assert caplog.records == []
