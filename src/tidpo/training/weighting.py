"""The token weights of a training step: the attribution route (fused, separate or none) and the estimator.

- :class:`FusedAttribution` (default): Eqs. 5–6 from the policy forward's own graph, one extra backward to the
  input embeddings only (the layout knows where they are).
- :class:`SeparateAttribution`: a second forward of whole rows from detached embeddings (the authors' code), the
  oracle of the fused route.
- :class:`NoAttribution`: the estimator does not use the attribution (``uniform``, ``prior``, ``random``,
  ``custom``, ``columns``, ``columns_raw``, or ``λ = 0``).

:class:`TokenWeighting` turns the attributions (or none) and, for ``columns`` / ``columns_raw``, the batch's
``token_weights`` (the dataset's per-token values, padded by ``PreferenceCollator`` in the full rows' token frame,
whatever the layout) into the ``(2B, L)`` weights of Eqs. 7–8.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from tidpo.importance import separate_attributions, token_weights
from tidpo.training.anchors import elapsed


class NoAttribution:
    name = "none"
    graph = False  # the policy forward keeps no embedding graph for it

    def __call__(self, model, policy, batch, inputs, log) -> None:
        return None


class FusedAttribution:
    name = "fused"
    graph = True

    def __init__(self, layout, target: str = "max_logit"):
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

        def target(embeds: Tensor) -> Tensor:
            features = layout.rows_forward(model, mask, inputs_embeds=embeds)
            if self.target == "response_logp":
                return layout.response_logp(features, ids, inputs["completion_mask"])
            return layout.head.target_logits(features, mask)

        embeds = layout.unwrap(model).get_input_embeddings()(ids)
        attributions = separate_attributions(target, embeds, mask, scalar=self.target == "response_logp")
        log("time/attribution", elapsed(start))
        return attributions


@dataclass(frozen=True)
class TokenWeighting:
    """Eqs. 7–8 with the config's estimator, ``λ``, prior width, span and norm (``estimator`` may be a callable:
    ``importance="custom"``)."""

    estimator: str | Callable
    mix: float = 0.7
    sigma_div: float = 4.0
    span: str = "response"
    norm: str = "mean"

    def __call__(self, inputs, attributions: Tensor | None) -> Tensor:
        return token_weights(
            self.estimator,
            inputs["completion_mask"],
            attributions=attributions,
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            mix=self.mix,
            sigma_div=self.sigma_div,
            span=self.span,
            norm=self.norm,
            column_weights=inputs.get("token_weights"),
        )
