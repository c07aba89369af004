"""Importance recovery: do the token weights land on the tokens that matter?

Given a per-token ground truth (for the sentiment task: the tokens of the words VADER's lexicon scores, see
:func:`tidpo.tasks.sentiment.lexicon_token_relevance`), each weighting of an :class:`~tidpo.eval.explain.Explanation`
is scored by:

- ``auc``: the ROC AUC of its per-token values at finding the relevant tokens, within each response that has
  both relevant and other tokens, averaged over those responses (0.5: no better than chance; the ranking inside
  a response is what a weighting changes, so responses are not pooled);
- ``auc_pooled``: the same over all scored tokens at once;
- ``eos_share``: the share of the response's total weight on its final token (the EOS), averaged over responses
  (``1/T`` is an even share);
- ``relevant_share``: the share of the response's total weight on the relevant tokens, averaged (compare with
  ``base_rate``, the share of the tokens that are relevant).

The weightings compared: ``hybrid`` (the final TI-DPO weight ``w``), ``gradient`` (the normalised attribution
``I/ΣI`` alone), ``prior`` (the Gaussian prior ``P``) and ``random`` (uniform noise, seeded); and, from the same
explanation's per-token log-probs, ``confidence_mask`` (the ``confidence`` estimator's ``I/ΣI``: the tokens less
likely than the response's mean token probability) and ``confidence`` (its Eq. 8 weight, ``λ I/ΣI + (1 − λ) P``
with the explanation's ``λ``; the estimator scores response tokens only, so its share over a sequence span is its
share over the response).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence

from tidpo.eval.metrics import roc_auc

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
Relevance = Callable[[list[str]], list[bool]]
WEIGHTINGS = ("hybrid", "gradient", "prior", "random")
CONFIDENCE_WEIGHTINGS = ("confidence", "confidence_mask", "prior", "random")


def relevance_by_words(tokens: Sequence[str], is_relevant: Callable[[str], bool]) -> list[bool]:
    """Mark each token that overlaps a relevant word of the text the tokens join into (a word split over several
    tokens marks all of them). ``tokens`` are the texts each token adds (:func:`tidpo.eval.explain.token_texts`)."""
    text = "".join(tokens)
    relevant_chars = [False] * len(text)
    for match in WORD.finditer(text):
        if is_relevant(match.group().lower()):
            relevant_chars[match.start() : match.end()] = [True] * (match.end() - match.start())
    out, position = [], 0
    for token in tokens:
        out.append(any(relevant_chars[position : position + len(token)]))
        position += len(token)
    return out


def confidence_mask_share(logps: Sequence[float]) -> list[float]:
    """``I/ΣI`` of the ``confidence`` estimator for one response's per-token log-probs, in plain Python (the
    tensor estimator's twin): 1 where ``log π(y_t) < log((1/T) Σ_s π(y_s))``, normalised; all 0 if no token is."""
    threshold = math.log(sum(math.exp(x) for x in logps) / len(logps))
    marks = [1.0 if x < threshold else 0.0 for x in logps]
    total = sum(marks)
    return [m / total for m in marks] if total else marks


def _response_values(response, name: str, rng: random.Random, mix: float = 0.7) -> list[float]:
    if name == "confidence_mask":
        return confidence_mask_share(response.logps)
    if name == "confidence":
        share = confidence_mask_share(response.logps)
        return [mix * s + (1 - mix) * p for s, p in zip(share, response.prior, strict=True)]
    if name == "hybrid":
        return list(response.weights)
    if name == "gradient":
        return list(response.gradient_share)
    if name == "prior":
        return list(response.prior)
    if name == "random":
        return [rng.random() for _ in response.tokens]
    raise ValueError(f"unknown weighting {name!r}; known: {', '.join(WEIGHTINGS + CONFIDENCE_WEIGHTINGS[:2])}")


def importance_recovery(explanation, relevance: Relevance, seed: int = 0, weightings=WEIGHTINGS) -> dict:
    """Score each weighting of ``explanation`` (an :class:`~tidpo.eval.explain.Explanation`) against the ground
    truth ``relevance(tokens) -> [bool per token]``. Returns ``{weighting: {auc, auc_pooled, eos_share,
    relevant_share}, "responses", "responses_scored", "tokens", "base_rate"}``."""
    responses = [r for pair in explanation.pairs for r in (pair.chosen, pair.rejected)]
    if not responses:
        raise ValueError("no responses to score")
    labels = []
    for r in responses:
        marks = relevance(list(r.tokens))
        if len(marks) != len(r.tokens):
            raise ValueError(f"relevance gave {len(marks)} marks for {len(r.tokens)} tokens")
        labels.append([bool(m) for m in marks])
    result: dict = {
        "responses": len(responses),
        "responses_scored": sum(0 < sum(m) < len(m) for m in labels),
        "tokens": sum(len(m) for m in labels),
        "base_rate": sum(sum(m) for m in labels) / sum(len(m) for m in labels),
    }
    for name in weightings:
        rng = random.Random(seed)
        values = [_response_values(r, name, rng, explanation.mix) for r in responses]
        aucs = [roc_auc(v, m) for v, m in zip(values, labels, strict=True) if 0 < sum(m) < len(m)]
        flat_v = [x for v in values for x in v]
        flat_m = [x for m in labels for x in m]
        shares = [_shares(v, m) for v, m in zip(values, labels, strict=True) if sum(v) > 0]
        result[name] = {
            "auc": sum(aucs) / len(aucs) if aucs else None,
            "auc_pooled": roc_auc(flat_v, flat_m) if 0 < sum(flat_m) < len(flat_m) else None,
            "eos_share": sum(s[0] for s in shares) / len(shares),
            "relevant_share": sum(s[1] for s in shares) / len(shares),
        }
    return result


def _shares(values: list[float], marks: list[bool]) -> tuple[float, float]:
    """The shares of a response's total weight on its last token (the EOS) and on its relevant tokens."""
    return values[-1] / sum(values), sum(x for x, y in zip(values, marks, strict=True) if y) / sum(values)
