"""The token weights of a training step: the attribution route (fused, separate or none) and the estimator.

- :class:`FusedAttribution` (default): Eqs. 5–6 from the policy forward's own graph, one extra backward to the
  input embeddings only (the layout knows where they are).
- :class:`SeparateAttribution`: a second forward of whole rows from detached embeddings (the authors' code), the
  oracle of the fused route; it runs on the unwrapped module, outside DDP.
- :class:`NoAttribution`: the estimator does not use the attribution (``uniform``, ``prior``, ``random``,
  ``custom``, ``columns``, ``columns_raw``, or ``λ = 0``).

:class:`TokenWeighting` turns the attributions (or none) and, for ``columns`` / ``columns_raw``, the batch's
``token_weights`` (the dataset's per-token values, padded by ``PreferenceCollator`` in the full rows' token frame,
whatever the layout) into the ``(2B, L)`` weights of Eqs. 7–8.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from tidpo.importance import target_attributions, token_weights
from tidpo.importance.target import AttributionTarget
from tidpo.training.anchors import elapsed


class NoAttribution:
    name = "none"
    graph = False  # the policy forward keeps no embedding graph for it

    def __call__(self, model, policy, batch, inputs, log) -> None:
        return None


class FusedAttribution:
    name = "fused"
    graph = True

    def __init__(self, layout, target: AttributionTarget):
        self.layout, self.target = layout, target

    def __call__(self, model, policy, batch, inputs, log) -> Tensor:
        """``(2B, L)`` attributions, timed as ``time/attribution``."""
        start = time.perf_counter()
        attributions = self.layout.fused_attributions(policy, batch, self.target)
        log("time/attribution", elapsed(start))
        return attributions


class SeparateAttribution(FusedAttribution):
    name = "separate"
    graph = False

    def __call__(self, model, policy, batch, inputs, log) -> Tensor:
        start = time.perf_counter()
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        layout = self.layout
        # the unwrapped module: autograd.grad through a DDP wrapper is wrong (pytorch#47562) and would leave its
        # reducer waiting for a backward; the embeddings are fresh leaves taken inside the forward (FSDP2-safe)
        module = layout.unwrap(model)
        with torch.enable_grad():
            features, embeds = layout.embedded_rows_forward(module, inputs, lambda e: e.detach().requires_grad_(True))
            scalar = self.target.scalar(layout.target_inputs(features, ids, mask, inputs["completion_mask"]))
            attributions = target_attributions(scalar, embeds, mask, retain_graph=False)
        log("time/attribution", elapsed(start))
        return attributions


@dataclass(frozen=True)
class Weighted:
    """The ``(2B, L)`` token weights of a step, and ``flags``: ``{"attributions": True}`` when the attributions held
    a NaN or an Inf (then the weights are NaN, so the update guard drops or refuses the update)."""

    weights: Tensor
    flags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TokenWeighting:
    """Eqs. 7–8 with the config's estimator, ``λ``, prior width, span and norm (``estimator`` may be a callable:
    ``importance="custom"``)."""

    estimator: str | Callable
    mix: float = 0.7
    sigma_div: float = 4.0
    span: str = "response"
    norm: str = "mean"

    def __call__(self, inputs, attributions: Tensor | None, stats=None) -> Weighted:
        """The weights of the batch ``inputs`` from the ``attributions`` (or None) and, for estimators that read
        them, the step's per-token log-probs ``stats`` (:class:`tidpo.lm_head.TokenStats`)."""
        completion_mask = inputs["completion_mask"]
        if attributions is not None and not torch.isfinite(attributions).all():  # checked before Eq. 8
            nan = torch.full(completion_mask.shape, math.nan, device=completion_mask.device)
            return Weighted(nan, {"attributions": torch.tensor(True)})
        weights = token_weights(
            self.estimator,
            completion_mask,
            attributions=attributions,
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            mix=self.mix,
            sigma_div=self.sigma_div,
            span=self.span,
            norm=self.norm,
            column_weights=inputs.get("token_weights"),
            policy_logps=None if stats is None else stats.per_token_logps.detach(),
            ref_logps=None
            if stats is None or stats.ref_per_token_logps is None
            else stats.ref_per_token_logps.detach(),
        )
        return Weighted(weights)
