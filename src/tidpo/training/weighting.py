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

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from tidpo.importance import embedding_attributions, target_attributions, token_weights
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
        # the unwrapped module: autograd.grad through a DDP wrapper is wrong (pytorch#47562) and would leave its
        # reducer waiting for a backward; the embeddings are fresh leaves taken inside the forward (FSDP2-safe)
        module = layout.unwrap(model)
        with torch.enable_grad():
            features, embeds = layout.embedded_rows_forward(module, inputs, lambda e: e.detach().requires_grad_(True))
            if self.target == "response_logp":
                scalar = layout.response_logp(features, ids, inputs["completion_mask"])
                attributions = target_attributions(scalar, embeds, mask, retain_graph=False)
            else:
                attributions = embedding_attributions(layout.head.target_logits(features, mask), embeds, mask,
                                                      retain_graph=False)  # fmt: skip
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
