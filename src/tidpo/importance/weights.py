"""Token weights for the weighted DPO reward (arXiv 2505.19653v3, Eq. 8) and the ablation estimators.

:func:`token_weights` reads as span → scores → Eq. 8 → normalise:

- the *span* the weights are built over: the response (``weight_span="response"``, the paper) or prompt +
  response (``"sequence"``, the authors' code);
- the raw *scores* ``I`` of each token in the span: the gradient attribution (Eqs. 5–6), a user estimator's
  scores, the dataset's per-token values (``importance="columns"``), or none;
- Eq. 8: ``W = λ·I/ΣI + (1 − λ)·P`` with the Gaussian prior ``P`` of Eq. 7 over the span;
- *normalise*: ``w = T · W / Σ W`` over the span (mean 1, ``weight_norm="mean"``) or ``W / Σ W`` (sum 1),
  then keep the response tokens (zero elsewhere).

With the response span the last step keeps everything that was normalised, so the response weights have mean 1.
Deviation (the authors' code, ``weight_span="sequence"``): the weights are normalised over prompt + response and
the response slice is kept *as it is*, so its weights need not average 1 and the chosen and rejected rows of a
pair generally carry different totals.

Which estimator needs what is one table, :data:`ESTIMATORS`; ``uniform`` and ``random`` have no span, prior or
scores: they are all 1 (plain DPO weighting) or uniform noise on the response, normalised there. ``columns_raw``
has none either: the dataset's per-token values are the weights as they are (zero off the response).

The dataset's values (``columns`` and ``columns_raw``) come from its ``chosen_weights`` / ``rejected_weights``
columns, one number per response token without the final EOS (the rule and its checks:
:mod:`tidpo.data.token_weights`); the EOS gets 0. They reach :func:`token_weights` as ``column_weights``, ``(B, L)``
in the token frame, 0 on the prompt and padding (``PreferenceCollator``'s ``batch["token_weights"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from tidpo.importance.prior import gaussian_prior


@dataclass(frozen=True)
class EstimatorSpec:
    """How an estimator builds raw weights: ``scores`` is ``"attribution"`` (Eqs. 5–6), ``"callable"`` (a user
    function), ``"columns"`` (the dataset's per-token values as ``I``), ``"none"`` (the prior alone), ``"ones"``
    (uniform), ``"noise"`` (random) or ``"given"`` (the dataset's per-token values are the weights); ``mix`` is
    the ``λ`` it fixes (None: the caller's ``importance_mix``). Only ``"attribution"``, ``"callable"``,
    ``"columns"`` and ``"none"`` go through the span, the prior and Eq. 8."""

    scores: str
    mix: float | None = None

    @property
    def hybrid(self) -> bool:
        return self.scores in ("attribution", "callable", "columns", "none")

    @property
    def reads_columns(self) -> bool:
        """Whether the estimator reads the dataset's ``chosen_weights`` / ``rejected_weights`` columns."""
        return self.scores in ("columns", "given")


ESTIMATORS: dict[str, EstimatorSpec] = {
    "hybrid": EstimatorSpec("attribution"),  # Eq. 8 with λ = importance_mix
    "gradient": EstimatorSpec("attribution", mix=1.0),  # ablation "no prior"
    "prior": EstimatorSpec("none", mix=0.0),  # ablation "prior only"
    "uniform": EstimatorSpec("ones"),  # plain DPO weighting
    "random": EstimatorSpec("noise"),  # ablation "random weights"
    "columns": EstimatorSpec("columns"),  # Eq. 8 with the dataset's per-token scores as I, λ = importance_mix
    "columns_raw": EstimatorSpec("given"),  # the dataset's per-token values are the weights, as they are
}
CUSTOM = EstimatorSpec("callable")
SPANS = ("response", "sequence")
NORMS = ("mean", "sum")
# A user estimator maps (input_ids, attention_mask, completion_mask) -> (B, L) non-negative raw scores, used in
# place of the gradient attribution I (and mixed with the prior by λ like it).
Estimator = Callable[[Tensor, Tensor, Tensor], Tensor]


def estimator_spec(estimator: str | Estimator) -> EstimatorSpec:
    """The table entry of ``estimator`` (a name of :data:`ESTIMATORS`, or a callable)."""
    if callable(estimator):
        return CUSTOM
    if estimator not in ESTIMATORS:
        raise ValueError(f"importance must be one of {tuple(ESTIMATORS)} or a callable, got {estimator!r}")
    return ESTIMATORS[estimator]


def needs_attribution(estimator: str | Estimator, mix: float) -> bool:
    """Whether ``estimator`` with ``λ = mix`` uses the gradient attribution (a backward to the embeddings)."""
    spec = estimator_spec(estimator)
    return spec.scores == "attribution" and (spec.mix if spec.mix is not None else mix) > 0


def needs_weight_columns(estimator: str | Estimator) -> bool:
    """Whether ``estimator`` reads the dataset's ``chosen_weights`` / ``rejected_weights`` columns (``columns``
    and ``columns_raw``, whatever ``λ``)."""
    return estimator_spec(estimator).reads_columns


def hybrid_token_weights(importance: Tensor, span_mask: Tensor, prior: Tensor, mix: float) -> Tensor:
    """``W = λ·I/ΣI + (1 − λ)·P`` over the span (Eq. 8); rows with ``ΣI = 0`` fall back to the prior alone.

    Args:
        importance: ``(B, L)`` raw attributions ``I`` (≥ 0).
        span_mask: ``(B, L)`` the span over which ``I`` is normalised.
        prior: ``(B, L)`` the Gaussian prior, sum 1 over the span.
        mix: ``λ`` in [0, 1].

    Returns:
        ``(B, L)``, sums to 1 over each non-empty span.
    """
    span = span_mask.to(importance.dtype)
    scores = importance * span
    total = scores.sum(-1, keepdim=True)
    importance_norm = torch.where(total > 0, scores / total.clamp(min=torch.finfo(total.dtype).tiny), prior)
    return mix * importance_norm + (1.0 - mix) * prior  # Eq. (8)


def normalize_weights(raw: Tensor, span_mask: Tensor, norm: str = "mean") -> Tensor:
    """Rescale non-negative ``raw`` weights to mean 1 (``"mean"``: ``w = T·W/ΣW``) or sum 1 (``"sum"``) over
    ``span_mask``, zero elsewhere.

    A span of one token gets weight 1; a row whose raw weights are all 0 gets uniform weights, so the result is
    never NaN. Rows with an empty span are all 0.
    """
    if norm not in NORMS:
        raise ValueError(f"weight_norm must be one of {NORMS}, got {norm!r}")
    mask = span_mask.to(raw.dtype)
    raw = torch.where(((raw * mask).sum(-1, keepdim=True) > 0), raw * mask, mask)
    total = raw.sum(-1, keepdim=True).clamp(min=torch.finfo(raw.dtype).tiny)
    scale = mask.sum(-1, keepdim=True) if norm == "mean" else torch.ones_like(total)
    return raw * scale / total  # w = T · W / Σ W  (or W / Σ W)


def weight_span_mask(span: str, completion_mask: Tensor, attention_mask: Tensor | None) -> Tensor:
    """The positions the weights are built over: the response, or every real token (``"sequence"``)."""
    if span not in SPANS:
        raise ValueError(f"weight_span must be one of {SPANS}, got {span!r}")
    if span == "response":
        return completion_mask.bool()
    if attention_mask is None:
        raise ValueError("weight_span='sequence' needs attention_mask")
    return attention_mask.bool()


def _check_scores(scores: Tensor, like: Tensor, what: str) -> Tensor:
    if scores.shape != like.shape:
        raise ValueError(f"{what} must have shape {tuple(like.shape)}, got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise FloatingPointError(f"{what} contain NaN or Inf; refusing to build token weights from them")
    if (scores < 0).any():
        raise ValueError(f"{what} must be non-negative")
    return scores.float()


def _column_values(column_weights: Tensor | None, completion_mask: Tensor, estimator: str) -> Tensor:
    """The dataset's per-token values ``(B, L)``, checked, on the response tokens only (0 on prompt and padding)."""
    if column_weights is None:
        raise ValueError(
            f"importance={estimator!r} needs column_weights: the (B, L) per-token values of the dataset's "
            "chosen_weights / rejected_weights columns, in the token frame (PreferenceCollator puts them in "
            "batch['token_weights'] when the dataset was tokenised with weight_columns=True)"
        )
    return _check_scores(column_weights, completion_mask, "column weights") * completion_mask.bool()


def _check_no_zero_rows(values: Tensor, response: Tensor, why: str) -> None:
    """Raises when a row with response tokens has values that are all 0 on them."""
    zero = response.any(-1) & ((values * response).sum(-1) == 0)
    if zero.any():
        rows = zero.nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} of the batch: the column weights are all 0 on the response tokens; {why}")


def _scores(spec, estimator, mix, attributions, input_ids, attention_mask, completion_mask, column_weights) -> Tensor:
    """The raw scores ``I`` ``(B, L)`` of Eq. 8 for a hybrid estimator (zeros when ``λ = 0``)."""
    if spec.scores == "columns":
        scores = _column_values(column_weights, completion_mask, estimator)
        if mix == 1.0:
            _check_no_zero_rows(
                scores, completion_mask.bool(), "importance='columns' with λ = 1 has no prior to fall back on"
            )
        return scores
    if spec.scores == "callable":
        scores = estimator(input_ids, attention_mask, completion_mask)
        return _check_scores(scores, completion_mask, "estimator scores")
    if spec.scores == "attribution" and mix > 0:
        if attributions is None:
            raise ValueError(f"importance={estimator!r} with λ={mix} needs gradient attributions")
        return _check_scores(attributions, completion_mask, "attributions")
    return torch.zeros(completion_mask.shape, device=completion_mask.device)


def token_weights(
    estimator: str | Estimator,
    completion_mask: Tensor,
    *,
    attributions: Tensor | None = None,
    input_ids: Tensor | None = None,
    attention_mask: Tensor | None = None,
    mix: float = 0.7,
    sigma_div: float = 4.0,
    span: str = "response",
    norm: str = "mean",
    generator: torch.Generator | None = None,
    column_weights: Tensor | None = None,
) -> Tensor:
    """Per-token weights ``w`` for Eqs. 9–10, zero off the response, in the token frame.

    Args:
        estimator: a name of :data:`ESTIMATORS` (``"hybrid"``: Eq. 8 with ``λ = mix``; ``"gradient"``: λ = 1;
            ``"prior"``: λ = 0; ``"uniform"``: plain DPO; ``"random"``: ablation; ``"columns"``: Eq. 8 with
            ``column_weights`` as ``I``; ``"columns_raw"``: ``column_weights`` on the response, as they are) or a
            callable (``Estimator``).
        completion_mask: ``(B, L)`` response tokens (incl. the final EOS).
        attributions: ``(B, L)`` gradient attributions ``I`` (needed when the estimator uses them).
        input_ids: ``(B, L)``, passed to a callable estimator.
        attention_mask: ``(B, L)``, the span for ``span="sequence"``.
        mix: ``λ``. sigma_div: the prior's ``T / σ``. span: ``"response"`` or ``"sequence"``.
        norm: ``"mean"`` or ``"sum"`` over the span. generator: for ``"random"``.
        column_weights: ``(B, L)`` the dataset's per-token values (≥ 0, finite; only the response's entries are
            read), for ``"columns"`` and ``"columns_raw"``.

    Returns:
        ``(B, L)`` float32, ≥ 0.

    Raises:
        ValueError: ``column_weights`` missing, of the wrong shape or negative for a column estimator, or all 0 on
            a row's response where nothing would give that row weight (``columns_raw``; ``columns`` with λ = 1).
        FloatingPointError: scores with NaN or Inf.
    """
    spec = estimator_spec(estimator)
    response = completion_mask.bool()
    if spec.scores == "given":  # columns_raw: the dataset's weights as they are, on the response
        weights = _column_values(column_weights, completion_mask, estimator)
        _check_no_zero_rows(weights, response, "importance='columns_raw' would give that response no weight at all")
        return weights
    if not spec.hybrid:  # uniform / random: on the response alone
        ones = spec.scores == "ones"
        raw = response.float() if ones else torch.rand(response.shape, generator=generator, device=response.device)
        return normalize_weights(raw, response, norm)
    mix = spec.mix if spec.mix is not None else mix
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"importance_mix (λ) must be in [0, 1], got {mix}")
    span_mask = weight_span_mask(span, response, attention_mask)  # span
    scores = _scores(
        spec, estimator, mix, attributions, input_ids, attention_mask, completion_mask, column_weights
    )  # scores
    weights = hybrid_token_weights(scores, span_mask, gaussian_prior(span_mask, sigma_div), mix)  # Eq. (8)
    return normalize_weights(weights, span_mask, norm) * response  # normalise over the span, keep the response
