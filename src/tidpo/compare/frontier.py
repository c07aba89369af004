"""Reward-against-KL frontiers: interpolation at a KL budget, the upper envelope, the paired bootstrap.

Pure numpy (no torch, no files), so every number of ``tidpo compare``'s report can be checked by hand.

A run is a path of points ``(KL, gain)`` in step order, starting at the reference itself ``(0, 0)``:

- **Reward at a budget** ``b``: the linear interpolation of the gain on the *first* segment of the path whose KL
  range contains ``b`` (both ends included; a segment of zero length gives its first point's gain). A path that
  never reaches ``b`` has no value there (NaN): nothing is extrapolated.
- **Upper envelope** of a set of points: ``E(x) = max{gain_j : KL_j <= x}``, the best gain reached within KL
  ``x``; a step function whose corners are the points no other point beats at equal or lower KL.
- **Paired bootstrap**: each replicate draws the seeds and the prompts with replacement (a seed brings the
  method's run and the baseline's run of that seed together; one prompt draw for every run of the replicate),
  recomputes each checkpoint's mean gain and mean KL on the drawn prompts, interpolates at each budget and averages
  over the drawn seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

MAX_MISSING = 0.05  # more replicates than this that miss a budget: no interval


def interpolate(kl: np.ndarray, gain: np.ndarray, budgets) -> np.ndarray:
    """The gain at each budget along paths of points (last axis: the points in step order), NaN where a path never
    reaches the budget. ``kl`` and ``gain`` have shape ``(..., points)``; the result ``(..., len(budgets))``."""
    kl, gain = np.asarray(kl, dtype=float), np.asarray(gain, dtype=float)
    b = np.asarray(budgets, dtype=float)
    k0, k1 = kl[..., :-1, None], kl[..., 1:, None]  # (..., segments, 1)
    g0, g1 = gain[..., :-1, None], gain[..., 1:, None]
    inside = (np.minimum(k0, k1) <= b) & (b <= np.maximum(k0, k1))  # (..., segments, budgets)
    width = k1 - k0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(width != 0, (b - k0) / np.where(width != 0, width, 1.0), 0.0)
    value = g0 + t * (g1 - g0)
    first = np.argmax(inside, axis=-2)[..., None, :]  # the first segment that contains the budget
    picked = np.take_along_axis(value, first, axis=-2)[..., 0, :]
    return np.where(inside.any(axis=-2), picked, np.nan)


def interpolate_path(kl, gain, budget: float) -> float:
    """:func:`interpolate` for one path and one budget, as a plain loop (the definition, written out)."""
    for i in range(len(kl) - 1):
        lo, hi = min(kl[i], kl[i + 1]), max(kl[i], kl[i + 1])
        if lo <= budget <= hi:
            if kl[i + 1] == kl[i]:
                return float(gain[i])
            t = (budget - kl[i]) / (kl[i + 1] - kl[i])
            return float(gain[i] + t * (gain[i + 1] - gain[i]))
    return float("nan")


def envelope(kl, gain) -> tuple[np.ndarray, np.ndarray]:
    """The corners ``(KL, gain)`` of the upper envelope ``E(x) = max{gain_j : KL_j <= x}`` of the points, by
    increasing KL: each point that beats every point at lower or equal KL (draw as a step, ``where="post"``)."""
    kl, gain = np.asarray(kl, dtype=float).ravel(), np.asarray(gain, dtype=float).ravel()
    order = np.lexsort((-gain, kl))  # by KL, the best gain first among equal KLs
    corners_kl, corners_gain, best = [], [], -np.inf
    for i in order:
        if gain[i] > best:
            corners_kl.append(kl[i])
            corners_gain.append(gain[i])
            best = gain[i]
    return np.array(corners_kl), np.array(corners_gain)


def draws(replicates: int, seeds: int, prompts: int, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap's draws: ``(seed_index (replicates, seeds), prompt_index (replicates, prompts))``, seeds drawn
    first, from ``numpy.random.default_rng(rng_seed)``."""
    rng = np.random.default_rng(rng_seed)
    seed_index = rng.integers(0, seeds, size=(replicates, seeds))
    prompt_index = rng.integers(0, prompts, size=(replicates, prompts))
    return seed_index, prompt_index


def counts(index: np.ndarray, size: int) -> np.ndarray:
    """How often each of ``size`` items was drawn in each row of ``index`` (rows: replicates)."""
    out = np.zeros((index.shape[0], size))
    np.add.at(out, (np.arange(index.shape[0])[:, None], index), 1.0)
    return out


def paths(kl: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checkpoint means ``(..., checkpoints)`` as paths that start at the reference's point ``(0, 0)``."""
    start = np.zeros((*np.shape(kl)[:-1], 1))
    return np.concatenate([start, kl], axis=-1), np.concatenate([start, gain], axis=-1)


def resampled_means(values: np.ndarray, prompt_weights: np.ndarray) -> np.ndarray:
    """``values (..., prompts)`` averaged with each replicate's prompt weights ``(replicates, prompts)`` (counts /
    prompts): ``(replicates, ...)``."""
    flat = values.reshape(-1, values.shape[-1]) @ prompt_weights.T  # (cells, replicates)
    return np.moveaxis(flat.reshape(*values.shape[:-1], -1), -1, 0)


def seed_means(values: np.ndarray, seed_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values (replicates, methods, seeds, budgets)`` averaged with each replicate's seed weights ``(replicates,
    seeds)``; returns ``(means, missing)``, ``missing`` where a drawn seed has no value (NaN mean there)."""
    weights = seed_weights[:, None, :, None]
    drawn = weights > 0
    missing = (drawn & np.isnan(values)).any(axis=2)
    means = (np.where(drawn, np.nan_to_num(values), 0.0) * weights).sum(axis=2)
    return np.where(missing, np.nan, means), missing


@dataclass
class Estimate:
    """One statistic per method and budget (arrays ``(methods, budgets)``): the point estimate over every seed and
    prompt (NaN when a seed's run does not reach the budget), the percentile interval (NaN when more than
    :data:`MAX_MISSING` of the replicates miss), and how many replicates missed."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    missing: np.ndarray


def summarise(point, replicates: np.ndarray, missing: np.ndarray, confidence: float) -> Estimate:
    """Percentile interval of the replicates ``(replicates, methods, budgets)`` that have a value."""
    tail = 100 * (1 - confidence) / 2
    count = missing.sum(axis=0)
    too_many = count > MAX_MISSING * replicates.shape[0]
    with warnings.catch_warnings():  # a cell whose every replicate misses has no interval: NaN, said by `missing`
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    return Estimate(point, np.where(too_many, np.nan, low), np.where(too_many, np.nan, high), count)


@dataclass
class Frontier:
    """The table of ``tidpo compare``: each method's gain at each budget, and its difference to the baseline."""

    budgets: np.ndarray
    reward: Estimate
    difference: Estimate | None
    reached: np.ndarray  # (methods, budgets): how many seeds' runs reach the budget (all prompts)
    replicates: int


def bootstrap(
    kl, gain, budgets, baseline: int | None = None, replicates: int = 2000, rng_seed: int = 0, confidence: float = 0.95
) -> Frontier:
    """Gain at each budget with the paired bootstrap of the module docstring.

    Args:
        kl, gain: per-prompt means ``(methods, seeds, checkpoints, prompts)``, checkpoints in step order (the
            reference's point ``(0, 0)`` is added in front); seed ``s`` of every method is the same training seed.
        baseline: index of the method the differences are taken against (None: no differences).
    """
    kl, gain = np.asarray(kl, dtype=float), np.asarray(gain, dtype=float)
    budgets = np.asarray(budgets, dtype=float)
    methods, seeds, _, prompts = gain.shape
    at_budget = interpolate(*paths(kl.mean(-1), gain.mean(-1)), budgets)  # (methods, seeds, budgets)
    seed_index, prompt_index = draws(replicates, seeds, prompts, rng_seed)
    prompt_weights = counts(prompt_index, prompts) / prompts
    seed_weights = counts(seed_index, seeds) / seeds
    resampled_paths = paths(resampled_means(kl, prompt_weights), resampled_means(gain, prompt_weights))
    resampled = interpolate(*resampled_paths, budgets)  # (replicates, methods, seeds, budgets)
    reward = summarise(at_budget.mean(axis=1), *seed_means(resampled, seed_weights), confidence)
    difference = None
    if baseline is not None:
        paired = at_budget - at_budget[baseline : baseline + 1]
        paired_resampled = resampled - resampled[:, baseline : baseline + 1]
        difference = summarise(paired.mean(axis=1), *seed_means(paired_resampled, seed_weights), confidence)
    reached = (~np.isnan(at_budget)).sum(axis=1)
    return Frontier(budgets, reward, difference, reached, replicates)
