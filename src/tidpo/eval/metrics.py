"""Evaluation statistics: text diversity (Distinct-n, Self-BLEU), bootstrap intervals, win rate, ROC AUC and the
EOS share of a response's token weights.

Pure standard library, no torch. Every function fails loudly: an empty input, inputs of different lengths, a NaN
(or, where the arithmetic needs finite numbers, an infinity) raise :class:`ValueError`; a bare string where a
sequence of strings is expected raises :class:`TypeError`.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Any

__all__ = [
    "bleu",
    "distinct_n",
    "eos_share",
    "mean_and_ci",
    "paired_difference",
    "roc_auc",
    "self_bleu",
    "win_rate",
    "words",
]

_TOKEN = re.compile(r"\w+|[^\w\s]")


# ---- input checks -------------------------------------------------------------------------------------------
def _numbers(name: str, values: Sequence[float], *, finite: bool = False) -> list[float]:
    """``values`` as a list of floats; ValueError if empty, NaN, or (``finite``) infinite."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers, not a string")
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{name} is empty")
    for i, v in enumerate(out):
        if math.isnan(v):
            raise ValueError(f"{name}[{i}] is NaN")
        if finite and math.isinf(v):
            raise ValueError(f"{name}[{i}] is infinite ({v})")
    return out


def _same_length(name_a: str, a: Sequence[Any], name_b: str, b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} differ in length ({len(a)} vs {len(b)})")


def _texts(name: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__}, not str")
    return out


def _check_order(name: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")


# ---- text metrics -------------------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    """Tokens of ``text`` for the text metrics: ``text.lower()`` split by the regex ``\\w+|[^\\w\\s]``, i.e. runs of
    word characters and single punctuation marks; whitespace is dropped."""
    if not isinstance(text, str):
        raise TypeError(f"text is {type(text).__name__}, not str")
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n: the number of distinct n-grams over all ``texts`` divided by the total number of n-grams, n-grams
    taken within each text's :func:`words` (never across texts); 0.0 if the texts have no n-gram at all."""
    texts = _texts("texts", texts)
    _check_order("n", n)
    if not texts:
        raise ValueError("texts is empty")
    total = 0
    distinct: set[tuple[str, ...]] = set()
    for text in texts:
        grams = _ngrams(words(text), n)
        total += len(grams)
        distinct.update(grams)
    return len(distinct) / total if total else 0.0


def bleu(hypothesis: str, references: Sequence[str], max_n: int = 4) -> float:
    """Sentence BLEU-``max_n`` of ``hypothesis`` against ``references`` (over :func:`words`):
    ``BP · exp((1/max_n) Σ_{n=1..max_n} log p_n)``. ``p_n`` is the modified n-gram precision: each hypothesis n-gram
    count is clipped to its largest count in any single reference, ``p_n = m_n / t_n`` with ``m_n`` the clipped matches
    and ``t_n`` the hypothesis n-grams; for ``n >= 2`` it is add-one smoothed, ``p_n = (m_n + 1) / (t_n + 1)`` (Lin &
    Och 2004), the unigram precision is not smoothed, and BLEU is 0 if ``m_1 = 0`` (so also for an empty hypothesis).
    ``BP = exp(1 - r/c)`` if ``c < r``, else 1, with ``c`` the hypothesis length and ``r`` the reference length closest
    to ``c`` (the shorter one on a tie)."""
    _check_order("max_n", max_n)
    refs = [words(r) for r in _texts("references", references)]
    if not refs:
        raise ValueError("references is empty")
    hyp = words(hypothesis)
    c = len(hyp)
    if c == 0:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        hyp_counts = Counter(_ngrams(hyp, n))
        max_ref: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            max_ref |= Counter(_ngrams(ref, n))  # element-wise max over the references
        matches = sum(min(count, max_ref[gram]) for gram, count in hyp_counts.items())
        total = c - n + 1 if c >= n else 0
        if n == 1:
            if matches == 0:
                return 0.0
            log_sum += math.log(matches / total)
        else:
            log_sum += math.log((matches + 1) / (total + 1))
    r = min((len(ref) for ref in refs), key=lambda length: (abs(length - c), length))
    brevity = math.exp(1.0 - r / c) if c < r else 1.0
    return brevity * math.exp(log_sum / max_n)


def self_bleu(groups: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Self-BLEU-``max_n``: the mean, over every text of every group (the samples of one prompt) that has at least
    one other text in its group, of :func:`bleu` of that text against the other texts of the same group; groups
    of a single text are skipped. Higher means less diverse."""
    _check_order("max_n", max_n)
    if isinstance(groups, (str, bytes)):
        raise TypeError("groups must be a sequence of sequences of strings, not a string")
    groups = list(groups)
    if not groups:
        raise ValueError("groups is empty")
    scores: list[float] = []
    for g, group in enumerate(groups):
        texts = _texts(f"groups[{g}]", group)
        if len(texts) < 2:
            continue
        for i, text in enumerate(texts):
            scores.append(bleu(text, texts[:i] + texts[i + 1 :], max_n=max_n))
    if not scores:
        raise ValueError("no text could be scored: every group has fewer than two texts")
    return math.fsum(scores) / len(scores)


# ---- bootstrap ----------------------------------------------------------------------------------------------
def _percentile_indices(confidence: float, n_resamples: int) -> tuple[int, int]:
    """``floor((1 - q)/2 · B)`` and ``ceil((1 + q)/2 · B) - 1``, computed exactly with ``q`` the decimal that
    ``confidence`` prints as (so 0.95 is exactly 95/100)."""
    q = Fraction(repr(float(confidence)))
    return math.floor((1 - q) / 2 * n_resamples), math.ceil((1 + q) / 2 * n_resamples) - 1


def mean_and_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """Mean of ``values`` with a percentile-bootstrap confidence interval; returns ``{"mean", "low", "high", "n"}``
    (``n`` the number of values). Units are the values, or with ``groups`` (e.g. each value's prompt) the groups in
    order of first appearance (cluster bootstrap). Each of the ``B = n_resamples`` resamples draws as many units as
    there are, with replacement, by ``random.Random(seed).choices`` (one generator for all resamples), and takes
    the mean of all values of the drawn units. With the B means sorted ascending (0-based), ``low`` is the one at
    index ``floor((1 - confidence)/2 · B)`` and ``high`` the one at ``ceil((1 + confidence)/2 · B) - 1``."""
    data = _numbers("values", values, finite=True)
    if isinstance(confidence, bool) or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    _check_order("n_resamples", n_resamples)
    rng = random.Random(seed)
    n = len(data)
    if groups is None:
        means = [math.fsum(rng.choices(data, k=n)) / n for _ in range(n_resamples)]
    else:
        means = _cluster_means(rng, data, groups, n_resamples)
    means.sort()
    lo, hi = _percentile_indices(confidence, n_resamples)
    return {"mean": math.fsum(data) / n, "low": means[lo], "high": means[hi], "n": n}


def _cluster_means(rng: random.Random, data: list[float], groups: Sequence[Hashable], n_resamples: int) -> list[float]:
    """The means of ``n_resamples`` cluster-bootstrap resamples (groups drawn with replacement, all their values
    kept), in draw order."""
    if isinstance(groups, (str, bytes)):
        raise TypeError("groups must be a sequence of group labels, not a string")
    _same_length("values", data, "groups", groups)
    members: dict[Hashable, list[float]] = {}
    for value, group in zip(data, groups, strict=True):
        members.setdefault(group, []).append(value)
    sums = [math.fsum(m) for m in members.values()]
    counts = [len(m) for m in members.values()]
    units = range(len(sums))
    means = []
    for _ in range(n_resamples):
        drawn = rng.choices(units, k=len(sums))
        means.append(math.fsum(sums[u] for u in drawn) / sum(counts[u] for u in drawn))
    return means


def paired_difference(
    policy: Sequence[float],
    reference: Sequence[float],
    groups: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`mean_and_ci` of the paired differences ``policy[i] - reference[i]`` (same length required)."""
    a = _numbers("policy", policy, finite=True)
    b = _numbers("reference", reference, finite=True)
    _same_length("policy", a, "reference", b)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return mean_and_ci(diffs, confidence=confidence, n_resamples=n_resamples, seed=seed, groups=groups)


# ---- comparisons --------------------------------------------------------------------------------------------
def win_rate(policy: Sequence[float], reference: Sequence[float]) -> float:
    """Share of items ``i`` with ``policy[i] > reference[i]``, a tie ``policy[i] == reference[i]`` counting 1/2."""
    a = _numbers("policy", policy)
    b = _numbers("reference", reference)
    _same_length("policy", a, "reference", b)
    points = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b, strict=True))
    return points / len(a)


def roc_auc(scores: Sequence[float], labels: Sequence[bool | int]) -> float:
    """ROC AUC: the probability that a random positive (label 1/True) scores above a random negative (label
    0/False), ties counting 1/2; computed as the Mann–Whitney ``U / (P·N)`` with ``U = R_+ - P(P+1)/2``, ``R_+`` the
    sum of the positives' 1-based ranks (tied scores get their average rank), ``P``/``N`` the numbers of
    positives/negatives."""
    s = _numbers("scores", scores)
    if isinstance(labels, (str, bytes)):
        raise TypeError("labels must be a sequence of 0/1 or booleans, not a string")
    _same_length("scores", s, "labels", labels)
    positive: list[bool] = []
    for i, label in enumerate(labels):
        if isinstance(label, (str, bytes)) or label not in (0, 1):
            raise ValueError(f"labels[{i}] is {label!r}; labels must be 0/1 or booleans")
        positive.append(label == 1)
    n_pos = sum(positive)
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes; got {n_pos} positive and {n_neg} negative labels")
    order = sorted(range(len(s)), key=s.__getitem__)
    rank_sum = 0.0  # of the positives; half-integers, so exact
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and s[order[end + 1]] == s[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1
        rank_sum += average_rank * sum(positive[order[k]] for k in range(start, end + 1))
        start = end + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


# ---- token weights ------------------------------------------------------------------------------------------
def eos_share(weights: Sequence[float]) -> float:
    """Share of a response's total token weight on its last token (the EOS): ``weights[-1] / Σ weights``."""
    w = _numbers("weights", weights, finite=True)
    total = math.fsum(w)
    if not total > 0:
        raise ValueError(f"the weights sum to {total}, which is not positive")
    return w[-1] / total
