"""Run a causal LM and turn its output into per-token statistics at the response tokens.

Two routes give the same numbers:
- *chunked* (default): the LM head is bypassed in the forward (its ``forward`` returns its input), so the model hands
  back final hidden states ``(B, L, D)``; log-probs and the KL are then taken at the response positions only,
  in chunks, by :mod:`tidpo.lm_head`. No ``(B, L, V)`` tensor is ever built and prompt positions cost nothing.
- *full*: the model's logits ``(B, L, V)`` and :mod:`tidpo.ops`. Used when the output layer is not a plain
  bias-free linear map (logit soft-capping or scaling after the head, a LoRA-wrapped head), or on request.
Either way the statistics are zero off the response tokens.

*Shared prompt* (chunked route, default): a pair's chosen and rejected rows start with the same prompt, so the
prompts run once, ``(B, P)`` left padded, and the ``2B`` responses continue from their key/value cache, which
keeps its gradient (:func:`forward_shared_prompt`). Every prompt token then costs one forward and one backward
instead of two, and a backward from response positions to response embeddings (the attribution) never enters
the prompt's graph. Hidden states at response positions equal those of whole rows.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tidpo.importance.attribution import attribution_target, gradient_scores, last_token_index
from tidpo.lm_head import HeadWorkspace, gather_predicting, head_token_stats, to_token_frame
from tidpo.ops import left_align, move_to_frame, per_token_kl, per_token_logps
from tidpo.training.packing import packed_forward

# config attributes with which a model changes its logits after the LM head
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def chunked_head_problem(model: nn.Module) -> str | None:
    """Why the chunked route cannot serve ``model`` (None when it can)."""
    head = model.get_output_embeddings()
    if type(head) is not nn.Linear:
        return f"its output layer is a {type(head).__name__}, not a plain torch.nn.Linear"
    if head.bias is not None:
        return "its output layer has a bias"
    for name in _LOGIT_TRANSFORMS:
        value = getattr(model.config, name, None)
        if value not in (None, 1, 1.0):
            return f"config.{name} = {value} transforms the logits after the output layer"
    return None


@contextlib.contextmanager
def hidden_states_as_output(model: nn.Module) -> Iterator[Tensor]:
    """While active, ``model(...).logits`` holds the final hidden states; yields the head's weight ``(V, D)``.

    The head's ``forward`` is shadowed by an identity on the instance (a forward hook would still run the
    ``(B, L, V)`` matmul and only then replace its result).
    """
    head = model.get_output_embeddings()
    head.forward = _identity
    try:
        yield head.weight
    finally:
        del head.forward


def _identity(hidden: Tensor) -> Tensor:
    return hidden


@dataclass
class Features:
    """One forward's output: hidden states ``(B, L, D)`` with the head ``weight`` (chunked route), or logits
    ``(B, L, V)`` with ``weight=None`` (full route)."""

    values: Tensor
    weight: Tensor | None = None

    def predicting(self, completion_mask: Tensor) -> Tensor:
        """Rows that predict the response tokens, row-major: ``(N, ·)``."""
        return gather_predicting(self.values, completion_mask)

    def last(self, attention_mask: Tensor) -> Tensor:
        """Each row's values at its last real token: ``(B, ·)``."""
        rows = torch.arange(self.values.shape[0], device=self.values.device)
        return self.values[rows, last_token_index(attention_mask)]


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
    padded, ``(2B, R)``: the B chosen rows, then the B rejected rows), with the full frame's ``completion_mask``."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    completion_mask: Tensor

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
        return cls(prompt_ids, prompt_mask, response_ids, response_mask.long(), completion)

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


class SharingUnsupported(RuntimeError):
    """The model's key/value cache is not the plain dynamic cache the shared-prompt forward relies on."""


def prompt_forward(
    model: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, prompt_embeds: Tensor | None = None
) -> PromptState:
    """Run left-padded prompts ``(B, P)`` once, keeping their keys and values (grad mode is the caller's);
    ``prompt_embeds`` ``(B, P, D)`` replaces the embedding lookup."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    tokens = {"input_ids": prompt_ids} if prompt_embeds is None else {"inputs_embeds": prompt_embeds}
    with hidden_states_as_output(model):
        out = model(**tokens, attention_mask=prompt_mask, position_ids=positions, use_cache=True)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    if type(cache) is not DynamicCache or any(type(layer) is not DynamicLayer for layer in cache.layers):
        raise SharingUnsupported(f"{type(model).__name__} returned a {type(cache).__name__} cache")
    return PromptState(out.logits[:, -1], [(layer.keys, layer.values) for layer in cache.layers], prompt_mask)


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
    with hidden_states_as_output(model) as weight:
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


def cache_keyword(model: nn.Module) -> str:
    """``cache`` (transformers ≥ 5.x) or ``past_key_values``, whichever the model's forward takes."""
    base = getattr(model, "module", model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@dataclass
class TokenStats:
    """Token-frame ``(B, L)`` statistics, zero off the response: policy and reference log-probs, and the
    full-vocabulary ``KL(π_ref ‖ π_θ)`` of the distribution that predicts each token (when asked for)."""

    logps: Tensor
    ref_logps: Tensor | None
    kl: Tensor | None


def forward_features(model: nn.Module, chunked: bool, packed: bool = False, **inputs) -> Features:
    """``model(**inputs, use_cache=False)`` as :class:`Features` (grad mode is the caller's); with ``packed``, the
    rows run without their padding (:mod:`tidpo.training.packing`) and come back in the padded layout."""

    def run():
        if packed:
            return packed_forward(model, **inputs, use_cache=False)
        return model(**inputs, use_cache=False).logits

    if not chunked:
        return Features(run())
    with hidden_states_as_output(model) as weight:
        hidden = run()
    if hidden.shape[-1] != weight.shape[1]:
        raise RuntimeError(
            f"{type(model).__name__} did not pass its output layer's input through ({hidden.shape[-1]} features, "
            f"head expects {weight.shape[1]}); set chunked_logits=False"
        )
    return Features(hidden, weight)


def last_token_logits(features: Features, attention_mask: Tensor) -> Tensor:
    """Logits ``(B, V)`` at each row's last real token (the attribution target of Eq. 5)."""
    last = features.last(attention_mask)  # (B, D) or (B, V)
    return last if features.weight is None else last @ features.weight.T


def token_stats(
    policy: Features,
    ref: Features | None,
    input_ids: Tensor,
    completion_mask: Tensor,
    with_kl: bool,
    chunk_size: int,
    workspace: HeadWorkspace | None = None,
) -> TokenStats:
    """Per-token log-probs of ``input_ids`` under the policy and (when given) the reference, and the KL when
    ``with_kl`` (which needs the reference), at response tokens."""
    if with_kl and ref is None:
        raise ValueError("the KL needs the reference's features")
    mask = completion_mask.to(torch.float32)
    if policy.weight is None:
        logps = per_token_logps(policy.values, input_ids) * mask
        ref_logps = None if ref is None else per_token_logps(ref.values, input_ids) * mask
        kl = per_token_kl(ref.values, policy.values) * mask if with_kl else None
        return TokenStats(logps, ref_logps, kl)
    targets = input_ids[:, 1:][completion_mask[:, 1:].bool()]
    stats = head_token_stats(
        policy.predicting(completion_mask),
        policy.weight,
        targets,
        None if ref is None else ref.predicting(completion_mask),
        None if ref is None else ref.weight,
        chunk_size=chunk_size,
        with_kl=with_kl,
        workspace=workspace,
    )
    frame = [
        None if v is None else to_token_frame(v, completion_mask) for v in (stats.logps, stats.ref_logps, stats.kl)
    ]
    return TokenStats(*frame)


def shared_prompt_attributions(
    features: SharedPromptFeatures,
    sharing: PromptSharing,
    response_embeds: Tensor,
    prompt_embeds: Tensor | None = None,
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
    target = attribution_target(last_token_logits(features, mask), mask)
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
