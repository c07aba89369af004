"""What a token-importance estimator is: the table entry that :func:`tidpo.importance.token_weights`, the config,
the routes and the data loader read, so that a new estimator is one file in :mod:`tidpo.importance.estimators`.

An estimator declares:

- ``kind``: ``"hybrid"``: its scores ``I`` go through Eq. 8 with the Gaussian prior over the weight span and are
  normalised there (``λ`` is ``importance_mix``, or the ``mix`` it fixes); ``"response"``: its raw weights are
  normalised on the response alone (no span, no prior); ``"given"``: its values are the weights as they are;
- ``needs``: the inputs it reads, from :data:`INPUTS` (the step computes the attributions only for an estimator that
  needs them with ``λ > 0``; the data loader adds the token-weight columns only for one that reads ``columns``);
- ``zero_weight_rows``: whether a response may carry no weight at all (the data checks refuse such rows otherwise);
- ``help``: its line in ``--help`` and the config's documentation; ``rank``: its place in the lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

INPUTS = (
    "attributions",  # (B, L) gradient attributions of Eqs. 5-6
    "policy_logps",  # (B, L) log π_θ of each token (token frame, 0 off the response), no gradient
    "ref_logps",  # (B, L) log π_ref of each token
    "columns",  # (B, L) the dataset's per-token values (chosen_weights / rejected_weights), 0 off the response
    "input_ids",  # (B, L)
    "attention_mask",  # (B, L)
    "generator",  # a torch.Generator for estimators that draw
)
KINDS = ("hybrid", "response", "given")


@dataclass(frozen=True)
class EstimatorInputs:
    """What a step offers an estimator, ``(B, L)`` in the token frame (None where the step has no such value)."""

    completion_mask: Tensor
    mix: float = 0.7
    attributions: Tensor | None = None
    policy_logps: Tensor | None = None
    ref_logps: Tensor | None = None
    columns: Tensor | None = None
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    generator: torch.Generator | None = None

    def need(self, name: str, estimator: str) -> Tensor:
        """The input ``name``, or a ValueError saying which estimator needs it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"importance={estimator!r} needs {name}, which this step did not provide")
        return value


@dataclass(frozen=True)
class Estimator:
    """One row of the estimator table (see the module docstring). ``scores(inputs) -> (B, L)``, ≥ 0."""

    name: str
    kind: str
    scores: Callable[[EstimatorInputs], Tensor]
    help: str
    needs: frozenset = frozenset()
    mix: float | None = None
    zero_weight_rows: bool = False
    rank: int = 100

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"estimator {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        unknown = set(self.needs) - set(INPUTS)
        if unknown:
            raise ValueError(f"estimator {self.name!r}: unknown inputs {sorted(unknown)}; known: {INPUTS}")

    @property
    def hybrid(self) -> bool:
        """Whether the scores go through the span, the prior and Eq. 8."""
        return self.kind == "hybrid"

    @property
    def reads_columns(self) -> bool:
        """Whether the estimator reads the dataset's ``chosen_weights`` / ``rejected_weights`` columns."""
        return "columns" in self.needs

    def effective_mix(self, mix: float) -> float:
        """``λ``: the one the estimator fixes, else the caller's ``importance_mix``."""
        return self.mix if self.mix is not None else mix

    def uses_attribution(self, mix: float) -> bool:
        """Whether it reads the gradient attribution (a backward to the embeddings) with ``λ = mix``."""
        return "attributions" in self.needs and self.effective_mix(mix) > 0


def check_scores(scores: Tensor, like: Tensor, what: str) -> Tensor:
    """``scores`` as float32 after checking its shape, that it is finite and that it is ≥ 0 (messages name ``what``)."""
    if scores.shape != like.shape:
        raise ValueError(f"{what} must have shape {tuple(like.shape)}, got {tuple(scores.shape)}")
    if not bool((scores >= 0).logical_and_(torch.isfinite(scores)).all()):  # one read back to the host per call
        if not torch.isfinite(scores).all():
            raise FloatingPointError(f"{what} contain NaN or Inf; refusing to build token weights from them")
        raise ValueError(f"{what} must be non-negative")
    return scores.float()


def from_callable(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Estimator:
    """``importance="custom"``: ``fn(input_ids, attention_mask, completion_mask) -> (B, L)`` scores used as ``I``."""

    def scores(x: EstimatorInputs) -> Tensor:
        return check_scores(fn(x.input_ids, x.attention_mask, x.completion_mask), x.completion_mask, "estimator scores")

    return Estimator("custom", "hybrid", scores, "a callable of one's own (importance_fn)", frozenset({"input_ids"}))
