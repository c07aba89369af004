"""The layout route: how a batch's rows are laid out for the forwards. Whole rows are here; the shared-prompt
layout, which runs each prompt once and continues both responses from its key/value cache, is in
:mod:`tidpo.training.prompt_cache`.

Every layout has the same few methods, so the training step calls them without asking which one it has:

- ``split(inputs)``: the layout's view of a collated batch (whole rows: the batch itself);
- ``rows_forward(model, attention_mask, **tokens)``: a forward of whole rows (separate attributions and the
  deferred anchor backward use it under every layout);
- ``policy_forward`` / ``ref_forward``: the step's two forwards;
- ``fused_attributions``: Eqs. 5–6 from the policy forward's own graph;
- ``sample_anchors``, ``anchor_frame``, ``anchor_policy_features``, ``anchor_ref_features``: the anchors of
  Eq. 13, sampled and scored.

:class:`PaddedRows` (``"whole rows"``) is the naive layout every other one is tested against;
:class:`PackedRows` (``"packed rows"``) runs the same rows without their padding (:mod:`tidpo.training.packing`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tidpo.importance import target_attributions
from tidpo.importance.target import AttributionTarget, TargetInputs
from tidpo.training import packing
from tidpo.training.anchors import AnchorBatch, sample_anchors
from tidpo.training.head import Features


@dataclass
class PolicyForward:
    """The policy's forward: its features, and the embeddings the fused attribution differentiates (whole rows
    ``(2B, L, D)``, or the responses ``(2B, R, D)`` and the prompts ``(B, P, D)`` with a shared prompt)."""

    features: Features
    embeds: Tensor
    prompt_embeds: Tensor | None = None


def attach(embeds: Tensor, graph: bool) -> Tensor:
    """``embeds`` as a point to take the attribution gradient at: a fresh leaf when the lookup has no graph (frozen
    embeddings, e.g. LoRA); unchanged without ``graph``."""
    return embeds.detach().requires_grad_(True) if graph and not embeds.requires_grad else embeds


@contextlib.contextmanager
def captured_embeddings(
    model: nn.Module, make: Callable[[Tensor], Tensor], feed: Callable[[Tensor], Tensor] | None = None
) -> Iterator[list[Tensor]]:
    """While active, each forward's embedding output ``e`` is replaced by ``feed(make(e))`` (``feed`` defaults
    to the identity), and ``make(e)`` is appended to the yielded list. The embeddings are thus taken inside the
    model's own forward, where DDP sees the embedding weight used and FSDP2 has unsharded it (a direct call of
    the embedding layer on sharded weights fails, pytorch#156535). ``model`` is the unwrapped module."""
    captured: list[Tensor] = []

    def hook(module, args, output):
        captured.append(make(output))
        return captured[-1] if feed is None else feed(captured[-1])

    handle = model.get_input_embeddings().register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def graph_mode(graph: bool):
    """Grad mode for a forward whose graph the attribution needs (evaluation runs under ``no_grad``)."""
    return torch.enable_grad() if graph else contextlib.nullcontext()


class PaddedRows:
    """Right-padded ``prompt + response`` rows, B chosen then B rejected, as collated."""

    name = "whole rows"

    def __init__(self, head):
        self.head, self.unwrap = head, head.unwrap

    def split(self, inputs: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        return inputs

    def call(self, model: nn.Module, attention_mask: Tensor, **tokens) -> Tensor:
        """``model(...)``'s ``.logits`` (hidden states under the chunked head)."""
        return model(attention_mask=attention_mask, **tokens, use_cache=False).logits

    def rows_forward(self, model: nn.Module, attention_mask: Tensor, **tokens) -> Features:
        """Whole rows (``input_ids`` or ``inputs_embeds``) through ``model`` and the head."""
        return self.head.forward(model, lambda: self.call(model, attention_mask, **tokens))

    def policy_forward(self, model: nn.Module, batch, graph: bool) -> PolicyForward:
        """The policy on the batch; with ``graph``, the embeddings are kept for the fused attribution."""
        with graph_mode(graph):
            features, embeds = self.embedded_rows_forward(model, batch, lambda e: attach(e, graph))
        return PolicyForward(features, embeds)

    def embedded_rows_forward(self, model: nn.Module, batch, make: Callable[[Tensor], Tensor]):
        """Whole rows through ``model`` with the embedding output replaced by ``make(e)``: the features, and the
        embeddings ``make(e)`` ``(2B, L, D)`` (see :func:`captured_embeddings`)."""
        with captured_embeddings(self.unwrap(model), make) as embeds:
            features = self.rows_forward(model, batch["attention_mask"], input_ids=batch["input_ids"])
        return features, embeds[0]

    def ref_forward(self, ref: nn.Module, batch) -> Features:
        return self.rows_forward(ref, batch["attention_mask"], input_ids=batch["input_ids"])

    def fused_attributions(self, policy: PolicyForward, batch, target: AttributionTarget) -> Tensor:
        """Eqs. 5–6 ``(2B, L)`` from the policy forward's graph (retained for the loss backward) for ``target``
        (an entry of :data:`tidpo.importance.TARGETS`)."""
        inputs = self.target_inputs(
            policy.features, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        )
        with torch.enable_grad():
            scalar = target.scalar(inputs)
        return target_attributions(scalar, policy.embeds, batch["attention_mask"], retain_graph=True)

    def target_inputs(self, features: Features, input_ids: Tensor, mask: Tensor, completion_mask: Tensor):
        """What an attribution target may read of whole rows' ``features``: the logits at each row's last real
        token, and the per-token log-probs (each with its graph, computed when asked)."""

        def token_logps() -> Tensor:
            return self.head.token_stats(features, None, input_ids, completion_mask, with_kl=False).per_token_logps

        return TargetInputs(mask, completion_mask, lambda m: self.head.target_logits(features, m), token_logps)

    def sample_anchors(
        self, model: nn.Module, batch, policy: PolicyForward, config, check=None, decode="dynamic"
    ) -> AnchorBatch:
        """One anchor per prompt from the current policy (``generate`` over the left-padded prompts; ``decode``:
        the anchor decode route)."""
        prompts = batch["prompt_input_ids"], batch["prompt_attention_mask"]
        return sample_anchors(self.unwrap(model), *prompts, config, check, decode)

    def anchor_frame(self, anchors: AnchorBatch) -> tuple[Tensor, Tensor]:
        """``(input_ids, completion_mask)`` of the rows the anchor features below are laid out in."""
        return anchors.input_ids, anchors.completion_mask

    def anchor_policy_features(self, model: nn.Module, anchors: AnchorBatch, policy: PolicyForward) -> Features:
        return self.rows_forward(model, anchors.attention_mask, input_ids=anchors.input_ids)

    def anchor_ref_features(self, ref: nn.Module, anchors: AnchorBatch, ref_features: Features) -> Features:
        return self.rows_forward(ref, anchors.attention_mask, input_ids=anchors.input_ids)


class PackedRows(PaddedRows):
    """The same rows packed end to end without their padding for every forward; outputs come back padded."""

    name = "packed rows"

    def call(self, model: nn.Module, attention_mask: Tensor, **tokens) -> Tensor:
        return packing.packed_forward(
            model, attention_mask, **tokens, use_cache=False, config=self.unwrap(model).config
        )

    def embedded_rows_forward(self, model: nn.Module, batch, make: Callable[[Tensor], Tensor]):
        """The embeddings are captured in the padded frame ``(2B, L, D)`` (unpacked from the forward's packed
        lookup, then packed again as its input), so the attributions come out per padded row."""
        module, mask = self.unwrap(model), batch["attention_mask"]
        rows = packing.RowPacking.from_mask(mask, one_row=packing.is_flash(module.config))
        if rows is None:
            return super().embedded_rows_forward(model, batch, make)
        with captured_embeddings(module, lambda e: make(rows.unpack(e)), feed=rows.pack) as embeds:
            features = self.rows_forward(model, mask, input_ids=batch["input_ids"])
        return features, embeds[0]
