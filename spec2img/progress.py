"""Progress for every long step: a tqdm bar with rate and ETA on a terminal, plain log lines otherwise.

Usage::

    with Progress(total=len(items), unit="clip", desc="features") as bar:
        for item in items:
            ...
            bar.update()

On a terminal (stderr is a TTY) this draws tqdm's bar. Elsewhere (CI, logs, pipes) it logs
``desc: done/total unit, rate/s, ETA s`` at most every ``every`` seconds and once at the end. The
first ETA is printed only after ``min_items`` items or ``min_seconds`` have passed, so it is a
measurement, never a guess from a cold start.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    """Counts finished items of a known total and reports rate and ETA (see module docstring).

    Args:
        total: number of items expected.
        unit: what an item is (``"clip"``, ``"fold"``, ``"file"``), for the messages.
        desc: short name of the step, printed before the counts.
        enabled: ``None`` = on; ``False`` = silent (``-q``).
        every: seconds between plain log lines when stderr is not a terminal.
        logger: where plain lines go (default: this module's logger).
    """

    def __init__(self, total: int, *, unit: str = "item", desc: str = "", enabled: bool | None = None,
                 every: float = 10.0, min_items: int = 3, min_seconds: float = 2.0,
                 logger: logging.Logger | None = None):
        self.total, self.unit, self.desc = int(total), unit, desc
        self.done, self.t0, self.last = 0, time.perf_counter(), time.perf_counter()
        self.every, self.min_items, self.min_seconds = every, min_items, min_seconds
        self.log = logger or log
        # -q (logging at WARNING) silences bars and lines alike
        self.enabled = (True if enabled is None else bool(enabled)) and self.log.isEnabledFor(logging.INFO)
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            # delay: no bar (and no ETA guessed from a cold start) for a job done within min_seconds
            self.bar = tqdm(total=self.total, unit=unit, desc=desc or None, dynamic_ncols=True, file=sys.stderr,
                            delay=min_seconds)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished items."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        finished = self.done >= self.total
        if finished or now - self.last >= self.every:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """``desc: done/total unit, rate/s, ETA s`` (ETA only once it is measured)."""
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self.t0, 1e-9)
        rate = self.done / elapsed
        head = f"{self.desc}: " if self.desc else ""
        text = f"{head}{self.done}/{self.total} {self.unit}s, {rate:.1f} {self.unit}s/s"
        if self.done >= self.total:
            return f"{text}, done in {elapsed:.1f} s"
        if self.done >= self.min_items or elapsed >= self.min_seconds:
            text += f", ETA {(self.total - self.done) / rate:.0f} s" if rate else ""
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
