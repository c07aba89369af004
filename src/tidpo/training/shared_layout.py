"""The shared-prompt layout the training step calls (:class:`SharedPrompt`), and the attributions it takes from a
shared-prompt forward (:func:`shared_prompt_attributions`). The prompt cache's mechanics (the batch split, the
prefill, the continuation, the probe) are in :mod:`tidpo.training.prompt_cache`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from tidpo.importance.attribution import gradient_scores
from tidpo.importance.target import AttributionTarget, TargetInputs
from tidpo.importance.targets import TARGETS
from tidpo.ops import move_to_frame
from tidpo.training.anchors import AnchorBatch, anchor_batch
from tidpo.training.decode import sample_from_prompt
from tidpo.training.head import Features, project
from tidpo.training.layouts import PaddedRows, PolicyForward, attach, captured_embeddings, graph_mode
from tidpo.training.prompt_cache import (
    PromptSharing,
    SharedPromptFeatures,
    continue_from_prompt,
    forward_shared_prompt,
)


def shared_prompt_attributions(
    features: SharedPromptFeatures,
    sharing: PromptSharing,
    response_embeds: Tensor,
    prompt_embeds: Tensor | None = None,
    target: AttributionTarget | None = None,
) -> Tensor:
    """Eqs. 5–6 attributions ``(2B, L)`` in the full rows' frame from a shared-prompt forward (graph retained).

    Response tokens: the gradient of each row's target at its response embeddings (the prompt's graph is not
    entered). Prompt tokens, when ``prompt_embeds`` is given (``weight_span="sequence"``): a pair's two rows
    read the same prompt, so their gradients would add up there. They are kept apart: the gradient each row sends
    into the repeated keys and values it read is taken first, then carried through the prompt's graph once for
    the B chosen rows and once for the B rejected rows. The prompt is thus backpropagated as often as with whole
    rows, the responses once.
    """
    mask = sharing.response_mask
    inputs = TargetInputs(mask, mask, lambda m: project(features.last(m), features.weight))
    target = (target or TARGETS["max_logit"]).scalar(inputs)
    read = [t for pair in features.cache_inputs for t in pair] if prompt_embeds is not None else []
    grads = torch.autograd.grad(target, [response_embeds, *read], retain_graph=True)
    attributions = sharing.to_full_frame(gradient_scores(grads[0], mask))
    if prompt_embeds is not None:
        n = prompt_embeds.shape[0]
        written = [t for pair in features.prompt.cache for t in pair]
        rows = []
        for half in (slice(0, n), slice(n, 2 * n)):
            (grad,) = torch.autograd.grad(written, prompt_embeds, [g[half] for g in grads[1:]], retain_graph=True)
            rows.append(gradient_scores(grad, sharing.prompt_mask))
        prompt_scores = torch.cat(rows)  # (2B, P), left padded
        attributions = attributions + move_to_frame(
            prompt_scores, sharing.prompt_mask.repeat(2, 1), sharing.prompt_positions()
        )
    return attributions


class SharedPrompt(PaddedRows):
    """The shared-prompt layout. ``prompt_attributions``: the span covers the prompt (``weight_span="sequence"``),
    so the fused attribution also needs the prompt tokens', per row."""

    name = "shared prompt"

    def __init__(self, head, prompt_attributions: bool):
        super().__init__(head)
        self.prompt_attributions = prompt_attributions

    def split(self, inputs: Mapping[str, Tensor]) -> PromptSharing:
        sharing = PromptSharing.from_batch(inputs)
        if sharing is None:
            raise ValueError(
                "share_prompt: this batch is not prompt + response rows as tidpo.data.PreferenceCollator lays them "
                "out (each row its pair's prompt, then its response, then padding); set share_prompt=False"
            )
        return sharing

    def policy_forward(self, model: nn.Module, sharing: PromptSharing, graph: bool) -> PolicyForward:
        # the embeddings are captured inside the two forwards: the prompts' (B, P, D), then the responses' (2B, R, D)
        keep = iter((graph and self.prompt_attributions, graph))
        with graph_mode(graph), captured_embeddings(self.unwrap(model), lambda e: attach(e, next(keep))) as captured:
            features = forward_shared_prompt(model, sharing)
        prompt_embeds, embeds = captured
        return PolicyForward(features, embeds, prompt_embeds if graph and self.prompt_attributions else None)

    def ref_forward(self, ref: nn.Module, sharing: PromptSharing) -> Features:
        return forward_shared_prompt(ref, sharing)

    def fused_attributions(self, policy: PolicyForward, sharing: PromptSharing, target: AttributionTarget) -> Tensor:
        if not target.shares_prompt:  # resolve_routes keeps such targets on whole rows
            raise ValueError(f"the shared prompt layout has no attribution target {target.name!r}")
        with torch.enable_grad():
            return shared_prompt_attributions(policy.features, sharing, policy.embeds, policy.prompt_embeds, target)

    def sample_anchors(
        self, model: nn.Module, sharing: PromptSharing, policy: PolicyForward, config, check=None, decode="dynamic"
    ) -> AnchorBatch:
        """Sampling continues the policy forward's prompts: no prompt runs again."""
        generated = sample_from_prompt(self.unwrap(model), policy.features.prompt, config, check, decode)
        return anchor_batch(sharing.prompt_ids, sharing.prompt_mask, generated, config)

    def anchor_frame(self, anchors: AnchorBatch) -> tuple[Tensor, Tensor]:
        """The anchor tokens alone, behind a slot for the prompt's last token (which predicts the first)."""
        ids = torch.cat([anchors.tokens[:, :1], anchors.tokens], dim=1)
        cmask = torch.cat([torch.zeros_like(anchors.token_mask[:, :1]), anchors.token_mask], dim=1)
        return ids, cmask

    def anchor_policy_features(self, model: nn.Module, anchors: AnchorBatch, policy: PolicyForward) -> Features:
        return continue_from_prompt(model, policy.features.prompt, anchors.token_mask, anchors.tokens)

    def anchor_ref_features(self, ref: nn.Module, anchors: AnchorBatch, ref_features: Features) -> Features:
        return continue_from_prompt(ref, ref_features.prompt, anchors.token_mask, anchors.tokens)
