"""Is a train/validation split probably leaky? Near-twins in a frozen embedding, against chance.

A split leaks when validation clips come from the same recording (speaker, session, source file)
as training clips: the score then measures recognising the recording, not the class (fsdd with
one group per file: 99.5% on a random split, 73% on a speaker never heard). spec2img's groups
(``--group-col``, ``--group-from-name``) keep a recording on one side of classify's own splits;
this check catches splits that cut through the known groups anyway (``--valid-csv``, a fold
column made without them) or through recordings that resemble each other as closely.

The rule (cosine similarities of embeddings standardised with the training clips' mean and std
and L2-normalised, e.g. the frozen AudioSet model's pooled features):

1. *Reference*: for each training clip, the similarity of its nearest training clip of the
   **same class** from **another group** (what a clip from a new recording finds at best).
2. *Near-twin threshold* ``tau``: the ``TWIN_QUANTILE`` (95%) quantile of that reference, so by
   construction a *chance* share of 5% of clips have a near-twin in other recordings.
3. A validation clip has a near-twin when its nearest same-class training clip is ``>= tau``.
   Counted per validation **group** (twinned when at least half its clips are; clips of one
   recording are not independent evidence), the split is *probably leaky* when the twinned share
   of groups is at least ``MIN_SHARE`` (15%), at least ``RATIO`` (2x) chance, and a one-sided
   binomial test against chance gives ``p < MAX_P`` (0.001): at least three validation groups are
   needed before anything can be flagged.

Limit, stated: with no groups at all (every file its own group) the reference itself contains
the hidden twins, so a random split of such data is not flagged (fsdd without
``--group-from-name``: 5% twins against 5% chance); the log says that no groups were given.
Measured (AudioSet embedding, docs/notes/numbers.md): random splits of UrbanSound8K-dev that cut
through its recordings (fsID) are flagged (41-56% twinned, p < 1e-17); grouped splits and the
official folds of UrbanSound8K-dev, esc50-dev's splits and fsdd's held-out speakers are not;
fsdd's random split with speaker groups (3 of 6 speakers twinned, p = 2e-3) is not either: six
groups are too few to tell (``classify.data.imageset.select`` already warns from the groups
themselves when a split cuts through them). Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

TWIN_QUANTILE = 0.95
MIN_SHARE = 0.15
RATIO = 2.0
MAX_P = 1e-3


@dataclass(frozen=True)
class LeakCheck:
    """Result of :func:`leak_check` (shares in [0, 1]; ``tau`` a cosine similarity)."""

    n_valid: int
    n_twins: int
    n_groups: int
    n_twin_groups: int
    share: float
    chance: float
    tau: float
    p_value: float
    leaky: bool

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def line(self) -> str:
        """One sentence for the log, metrics.json and the report."""
        verdict = ("the split probably leaks: clips of one recording or speaker on both sides (give the groups: "
                   "spec2img --group-col COL or --group-from-name REGEX)" if self.leaky else "no sign of a leaky split")
        return (f"{self.share:.0%} of {self.n_valid} validation clips have a near-twin of their class in training "
                f"(cosine >= {self.tau:.3f} in the frozen embedding), {self.chance:.0%} expected by chance: {verdict}")


def normalise(train: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both with the training mean/std per dimension, then L2-normalise each row."""
    train, valid = np.asarray(train, np.float64), np.asarray(valid, np.float64)
    mu, sd = train.mean(0), train.std(0) + 1e-8

    def unit(x):
        x = (x - mu) / sd
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return unit(train), unit(valid)


def _nearest(sim: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Row-wise max of ``sim`` over ``allowed`` cells; -inf where a row allows none."""
    return np.where(allowed, sim, -np.inf).max(axis=1) if sim.shape[1] else np.full(len(sim), -np.inf)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact; n up to a few 10^4)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def leak_check(train: np.ndarray, train_labels: np.ndarray, valid: np.ndarray, valid_labels: np.ndarray, *,
               train_groups: np.ndarray | None = None, valid_groups: np.ndarray | None = None) -> LeakCheck:
    """Apply the module's rule to embeddings ``train`` [shape=(n_t, d)] and ``valid`` [shape=(n_v, d)].

    ``*_labels`` [shape=(n,)]: one class per clip (a multi-label clip's first label);
    ``train_groups`` / ``valid_groups``: recording of each clip (default: each its own). The test
    counts validation *groups* (clips of one recording are not independent evidence).
    """
    train_labels, valid_labels = np.asarray(train_labels).astype(str), np.asarray(valid_labels).astype(str)
    groups = (np.arange(len(train)).astype(str) if train_groups is None else np.asarray(train_groups).astype(str))
    t, v = normalise(train, valid)
    ref_pairs = (train_labels[:, None] == train_labels[None, :]) & (groups[:, None] != groups[None, :])
    ref = _nearest(t @ t.T, ref_pairs)
    ref = ref[np.isfinite(ref)]
    tau = float(np.quantile(ref, TWIN_QUANTILE)) if len(ref) else 1.0
    chance = max(float(np.mean(ref >= tau)) if len(ref) else 0.0, 1 - TWIN_QUANTILE)
    twins = _nearest(v @ t.T, valid_labels[:, None] == train_labels[None, :]) >= tau
    vg = np.arange(len(v)).astype(str) if valid_groups is None else np.asarray(valid_groups).astype(str)
    _, inverse = np.unique(vg, return_inverse=True)
    twin_groups = np.bincount(inverse, weights=twins.astype(float)) >= 0.5 * np.bincount(inverse)
    n, k = len(twin_groups), int(twin_groups.sum())
    group_share = k / n if n else 0.0
    p = binomial_sf(k, n, chance)
    leaky = bool(n and group_share >= MIN_SHARE and group_share >= RATIO * chance and p < MAX_P)
    share = float(twins.mean()) if len(v) else 0.0
    return LeakCheck(len(v), int(twins.sum()), n, k, share, chance, tau, p, leaky)
