"""The shared-prompt layout: each prompt runs once and everything else continues from its key/value cache.

A pair's chosen and rejected rows start with the same prompt, so the prompts run once, ``(B, P)`` left padded
(the *prefill*, :func:`prompt_forward`), and the ``2B`` responses continue from their keys and values, which keep
their gradient (:func:`continue_from_prompt`). Every prompt token then costs one forward and one backward instead
of two, and a backward from response positions to response embeddings (the attribution) never enters the
prompt's graph. Hidden states at response positions equal those of whole rows.

The cache's mechanics live here: the batch split (:class:`PromptSharing`), the prefill and the continuation, and
the one-time probe of a model's cache (:func:`sharing_problem`). The layout object the training step calls and
the per-row prompt attribution of the ``sequence`` span are in :mod:`tidpo.training.shared_layout`; the anchors'
decode loop from a prompt's cache is :func:`tidpo.training.decode.sample_from_prompt`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tidpo.ops import left_align, move_to_frame
from tidpo.training.head import Features, hidden_states_as_output


def _base(model: nn.Module) -> nn.Module:
    """The module under a DDP-style wrapper (one that keeps it as ``.module``)."""
    return getattr(model, "module", model)


@dataclass
class PromptState:
    """A prompt forward's output, for continuations: each prompt's last hidden state ``(B, D)`` (it predicts the
    first continuation token), the per-layer keys and values ``(B, heads, P, d)`` (graph-carrying when the forward
    had one) and the left-padded prompt mask ``(B, P)``."""

    last: Tensor
    cache: list[tuple[Tensor, Tensor]]
    mask: Tensor

    def detached(self) -> PromptState:
        return PromptState(self.last.detach(), [(k.detach(), v.detach()) for k, v in self.cache], self.mask)

    def repeated(self, repeats: int = 1) -> list[tuple[Tensor, Tensor]]:
        """The keys and values ``repeats`` times along the batch (B rows, then B again), per layer."""
        return [(k.repeat(repeats, 1, 1, 1), v.repeat(repeats, 1, 1, 1)) for k, v in self.cache]

    def dynamic_cache(self, repeated: list[tuple[Tensor, Tensor]] | None = None):
        """A fresh ``DynamicCache`` holding the prompt (or its ``repeated`` keys and values); the cache's updates
        concatenate into new tensors, so these stay as they are."""
        from transformers.cache_utils import DynamicCache

        return DynamicCache(ddp_cache_data=self.cache if repeated is None else repeated)

    def positions(self, length: int, repeats: int = 1) -> Tensor:
        """Position ids ``(repeats·B, length)`` of continuation tokens (each prompt's real length onwards)."""
        start = self.mask.sum(-1).repeat(repeats).unsqueeze(1)
        return start + torch.arange(length, device=self.mask.device)


@dataclass
class SharedPromptFeatures(Features):
    """Hidden states of continuations of shared prompts: ``values`` ``(repeats·B, R, D)`` at the continuation
    tokens (right padded, ``response_mask``), row ``i`` continuing prompt ``i mod B``; ``prompt`` holds the
    prompts' last hidden states, which predict the first continuation token."""

    prompt: PromptState | None = None
    response_mask: Tensor | None = None
    repeats: int = 2
    cache_inputs: list[tuple[Tensor, Tensor]] | None = None  # the repeated keys/values the continuation read

    def predicting(self, completion_mask: Tensor) -> Tensor:
        first = self.prompt.last.repeat(self.repeats, 1).unsqueeze(1)  # rows: B chosen, then B rejected
        frame = torch.cat([first, self.values[:, :-1]], dim=1)  # entry j predicts response token j
        return frame[self.response_mask.bool()]

    def last(self, attention_mask: Tensor) -> Tensor:
        return super().last(self.response_mask)


@dataclass
class PromptSharing:
    """A batch in TRL's layout split into its ``B`` prompts (left padded, ``(B, P)``) and ``2B`` responses (right
    padded, ``(2B, R)``: the B chosen rows, then the B rejected rows), with the full frame's ``completion_mask``
    and the collated ``batch`` itself."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    completion_mask: Tensor
    batch: Mapping[str, Tensor] | None = None

    @classmethod
    def from_batch(cls, inputs: Mapping[str, Tensor]) -> PromptSharing | None:
        """The split, or None when the batch does not have the layout of :class:`tidpo.data.PreferenceCollator`
        (each row exactly its pair's prompt followed by its response, then padding)."""
        if not {"prompt_input_ids", "prompt_attention_mask"} <= set(inputs):
            return None
        ids, attention, completion = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        prompt_ids, prompt_mask = inputs["prompt_input_ids"], inputs["prompt_attention_mask"]
        if ids.shape[0] != 2 * prompt_ids.shape[0]:
            return None
        prompt_len = prompt_mask.sum(-1).repeat(2)
        end = prompt_len + completion.sum(-1)
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        in_row = positions < end.unsqueeze(1)
        if not (
            torch.equal(attention.bool(), in_row)
            and torch.equal(completion.bool(), in_row & (positions >= prompt_len.unsqueeze(1)))
        ):
            return None
        prompts, prompt_present = left_align(prompt_ids, prompt_mask)
        width = prompts.shape[1]
        if width > ids.shape[1] or not torch.equal(
            (ids[:, :width] * prompt_present.repeat(2, 1)), prompts.repeat(2, 1)
        ):
            return None
        response_ids, response_mask = left_align(ids, completion)
        return cls(prompt_ids, prompt_mask, response_ids, response_mask.long(), completion, inputs)

    def embed(self, embedding: nn.Module) -> tuple[Tensor, Tensor]:
        """``(prompt_embeds (B, P, D), response_embeds (2B, R, D))`` from one lookup: one embedding backward (a
        dense vocabulary-sized gradient) instead of two."""
        prompt_ids, response_ids = self.prompt_ids, self.response_ids
        flat = embedding(torch.cat([prompt_ids.reshape(-1), response_ids.reshape(-1)]))
        prompt_embeds, response_embeds = flat.split([prompt_ids.numel(), response_ids.numel()])
        return prompt_embeds.view(*prompt_ids.shape, -1), response_embeds.view(*response_ids.shape, -1)

    def prompt_positions(self) -> Tensor:
        """Where the prompt tokens sit in the full rows: ``(2B, L)`` bool."""
        lengths = self.prompt_mask.sum(-1).repeat(2).unsqueeze(1)
        return torch.arange(self.completion_mask.shape[1], device=lengths.device).unsqueeze(0) < lengths

    def to_full_frame(self, values: Tensor) -> Tensor:
        """Response-frame ``(2B, R)`` values at their tokens' places in the full rows ``(2B, L)``, 0 elsewhere."""
        return move_to_frame(values, self.response_mask, self.completion_mask)


def cache_problem(model: nn.Module, cache) -> str | None:
    """Why ``cache`` (a forward's returned cache) is not the plain dynamic cache continuations rely on."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    if type(cache) is not DynamicCache or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return f"{type(_base(model)).__name__} returned a {type(cache).__name__} cache, not a plain DynamicCache"
    return None


def _prefill(model: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, prompt_embeds: Tensor | None):
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    tokens = {"input_ids": prompt_ids} if prompt_embeds is None else {"inputs_embeds": prompt_embeds}
    with hidden_states_as_output(_base(model)):
        out = model(**tokens, attention_mask=prompt_mask, position_ids=positions, use_cache=True)
    return out.logits, getattr(out, "cache", None) or getattr(out, "past_key_values", None)


def prompt_forward(
    model: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, prompt_embeds: Tensor | None = None
) -> PromptState:
    """Run left-padded prompts ``(B, P)`` once, keeping their keys and values (grad mode is the caller's);
    ``prompt_embeds`` ``(B, P, D)`` replaces the embedding lookup."""
    hidden, cache = _prefill(model, prompt_ids, prompt_mask, prompt_embeds)
    problem = cache_problem(model, cache)
    if problem is not None:  # the route was probed before training (sharing_problem): this is a broken invariant
        raise RuntimeError(f"share_prompt: {problem}")
    return PromptState(hidden[:, -1], [(layer.keys, layer.values) for layer in cache.layers], prompt_mask)


@torch.no_grad()
def sharing_problem(model: nn.Module) -> str | None:
    """Why ``model`` cannot continue prompts from their cache (None when it can): a two-token prefill must
    return a plain dynamic cache."""
    device = model.get_input_embeddings().weight.device
    was_training = model.training
    model.eval()
    try:
        ids = torch.zeros(1, 2, dtype=torch.long, device=device)
        return cache_problem(model, _prefill(model, ids, torch.ones_like(ids), None)[1])
    finally:
        model.train(was_training)


def cache_keyword(model: nn.Module) -> str:
    """``cache`` (transformers ≥ 5.x) or ``past_key_values``, whichever the model's forward takes."""
    base = _base(model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def continue_from_prompt(
    model: nn.Module,
    prompt: PromptState,
    response_mask: Tensor,
    response_ids: Tensor | None = None,
    response_embeds: Tensor | None = None,
    repeats: int = 1,
) -> SharedPromptFeatures:
    """Run right-padded continuations ``(repeats·B, R)`` of the prompts from their keys and values (gradients
    flow into the prompt's graph when it has one). Give ``response_ids`` or ``response_embeds``."""
    length = response_mask.shape[1]
    repeated = prompt.repeated(repeats)
    tokens = {"input_ids": response_ids} if response_embeds is None else {"inputs_embeds": response_embeds}
    with hidden_states_as_output(_base(model)) as weight:
        out = model(
            **tokens,
            attention_mask=torch.cat([prompt.mask.repeat(repeats, 1), response_mask], dim=1),
            position_ids=prompt.positions(length, repeats),
            use_cache=True,
            **{cache_keyword(model): prompt.dynamic_cache(repeated)},
        )
    return SharedPromptFeatures(
        out.logits, weight, prompt=prompt, response_mask=response_mask, repeats=repeats, cache_inputs=repeated
    )


def forward_shared_prompt(
    model: nn.Module,
    sharing: PromptSharing,
    response_embeds: Tensor | None = None,
    prompt_embeds: Tensor | None = None,
) -> SharedPromptFeatures:
    """The prompts once, then both responses of every pair from their cache (grad mode is the caller's);
    ``response_embeds`` ``(2B, R, D)`` and ``prompt_embeds`` ``(B, P, D)`` replace the embedding lookups (the
    attribution takes its gradient at the response embeddings; see :meth:`PromptSharing.embed`)."""
    prompt = prompt_forward(model, sharing.prompt_ids, sharing.prompt_mask, prompt_embeds)
    return continue_from_prompt(
        model, prompt, sharing.response_mask, sharing.response_ids, response_embeds=response_embeds, repeats=2
    )
