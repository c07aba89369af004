"""Anchors for the triplet loss (docs/method.md §4, Eq. 13): sampling, scoring, and the deferred anchor backward.

One anchor per prompt is sampled from the current policy every step (top-k, top-p, temperature; no gradient
through sampling). Prompts arrive left padded (``prompt_input_ids``/``prompt_attention_mask``) so that one batched,
KV-cached ``generate`` call serves the whole batch; ``generate`` derives position ids from the attention mask, so
left padding does not shift positions. Under the shared-prompt layout sampling continues from the prompts' keys
and values instead (:func:`tidpo.training.decode.sample_from_prompt`). Either way the samples become
right-padded ``prompt + anchor`` rows (:func:`anchor_batch`).

The anchors' tokens are then scored by both models with gradient through the policy. The anchor backward route:
- ``joint``: the anchors' graph joins the main one, and one backward serves both;
- ``deferred``: the anchors are scored without a graph, the loss's gradient with respect to their log-ratios is
  kept (:class:`PendingAnchorBackward` → :class:`AnchorBackward`), and after the main backward their whole rows
  are run again with a graph and backpropagated alone (lower peak memory, one more anchor forward). Same
  gradients.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from tidpo.losses import TripletOutput, triplet_loss
from tidpo.ops import left_align, move_to_frame


@dataclass
class AnchorBatch:
    """Right-padded ``prompt + anchor`` rows: ``input_ids``, ``attention_mask``, ``completion_mask``, all (B, L);
    and the anchors alone, ``tokens`` (B, N) with ``token_mask`` (B, N) up to and including the first EOS."""

    input_ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor
    tokens: Tensor
    token_mask: Tensor


def _until_first_eos(generated: Tensor, eos_token_id: int) -> Tensor:
    """Mask of generated tokens up to and including the first EOS of each row: ``(B, N) -> (B, N)`` bool."""
    is_eos = generated == eos_token_id
    eos_before = is_eos.long().cumsum(-1) - is_eos.long()  # EOS strictly before each position
    return eos_before == 0


def anchor_generation_config(args, tokenizer) -> GenerationConfig:
    """Anchor sampling (docs/method.md §4): top-k, top-p, temperature, at most ``anchor_max_new_tokens``, KV-cached."""
    sampling = {key: getattr(args, f"anchor_{key}") for key in ("temperature", "top_k", "top_p", "max_new_tokens")}
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    return GenerationConfig(do_sample=True, use_cache=True, **sampling, **ids)


class FiniteLogitsCheck(LogitsProcessor):
    """Runs before each anchor token is drawn: a row whose scores make no distribution (a NaN, a +Inf, or nothing
    above -Inf; top-k and top-p set -Inf on purpose) is noted in :attr:`seen` and ends its anchor there with the
    EOS, so the draw finishes and the step reports ``anchor_logits`` to the update guard, which drops or refuses
    the update (the anchors are never used). Draws from finite scores are untouched (no random number is taken
    here), and nothing is read back to the host per token."""

    def __init__(self, eos_token_id: int):
        self.eos_token_id = eos_token_id
        self.seen: Tensor | None = None  # 0-d bool: some row's scores were not a distribution

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        # a row's max is NaN if it holds a NaN, +Inf if it holds a +Inf, -Inf if nothing is above -Inf: one (B,)
        # reduction, and the bad rows are rewritten in place (no (B, V) tensor is allocated per token)
        bad = ~torch.isfinite(scores.amax(-1))
        self.seen = bad.any() if self.seen is None else self.seen | bad.any()
        eos = scores[:, self.eos_token_id].masked_fill(bad, 0.0)
        scores.masked_fill_(bad[:, None], -math.inf)
        scores[:, self.eos_token_id] = eos
        return scores

    def failed(self) -> bool:
        return self.seen is not None and bool(self.seen)


@torch.no_grad()
def sample_anchors(
    model: nn.Module,
    prompt_input_ids: Tensor,
    prompt_attention_mask: Tensor,
    generation_config: GenerationConfig,
    check: FiniteLogitsCheck | None = None,
    decode: str = "dynamic",
) -> AnchorBatch:
    """Sample one anchor per prompt from ``model`` with ``generate`` and lay out ``prompt + anchor`` rows; with
    ``decode="static"`` or ``"graph"`` (:mod:`tidpo.training.decode`) the prompts are prefilled once and the same
    tokens are drawn from a static cache instead.

    Args:
        model: the current policy (unwrapped; a PEFT model samples with its adapters on).
        prompt_input_ids: ``(B, P)`` left-padded prompts.
        prompt_attention_mask: ``(B, P)``.
        generation_config: sampling settings (``do_sample``, ``top_k``, ``top_p``, ``temperature``,
            ``max_new_tokens``, ``eos_token_id``, ``pad_token_id``).
        check: notes scores that make no distribution (see :class:`FiniteLogitsCheck`).
        decode: the anchor decode route: ``dynamic`` (``generate``), ``static`` or ``graph``.
    """
    if decode != "dynamic":
        from tidpo.training.decode import sample_from_prompt
        from tidpo.training.prompt_cache import prompt_forward

        prompt = prompt_forward(model, prompt_input_ids, prompt_attention_mask)
        generated = sample_from_prompt(model, prompt, generation_config, check, decode)
        return anchor_batch(prompt_input_ids, prompt_attention_mask, generated, generation_config)
    sequences = model.generate(
        input_ids=prompt_input_ids,
        attention_mask=prompt_attention_mask,
        generation_config=generation_config,
        logits_processor=LogitsProcessorList([check] if check is not None else []),
    )
    generated = sequences[:, prompt_input_ids.shape[1] :]  # (B, N)
    return anchor_batch(prompt_input_ids, prompt_attention_mask, generated, generation_config)


def anchor_batch(
    prompt_input_ids: Tensor, prompt_attention_mask: Tensor, generated: Tensor, config: GenerationConfig
) -> AnchorBatch:
    """Left-padded prompts ``(B, P)`` and their sampled continuations ``(B, N)`` as right-padded rows, each
    anchor cut after its first EOS."""
    eos, pad = config.eos_token_id, config.pad_token_id
    gen_mask = _until_first_eos(generated, eos)
    sequences = torch.cat([prompt_input_ids, generated], dim=1)
    keep = torch.cat([prompt_attention_mask.bool(), gen_mask], dim=1)
    is_completion = torch.cat([torch.zeros_like(prompt_attention_mask, dtype=torch.bool), gen_mask], dim=1)
    input_ids, attention_mask = left_align(sequences, keep)
    completion, _ = left_align(is_completion.long(), keep)
    input_ids = input_ids.masked_fill(~attention_mask, pad)
    return AnchorBatch(
        input_ids=input_ids,
        attention_mask=attention_mask.long(),
        completion_mask=completion,
        tokens=generated.masked_fill(~gen_mask, pad),
        token_mask=gen_mask.long(),
    )


@dataclass(frozen=True)
class AnchorBackward:
    """The deferred anchor backward of one step: the anchors' whole rows and ``∂loss/∂ρ(anchor)`` ``(B, N)`` in
    the frame the anchors were scored in (``frame``, its completion mask)."""

    anchors: AnchorBatch
    grad: Tensor
    frame: Tensor

    def surrogate(self, model: nn.Module, layout) -> Tensor:
        """``Σ log π_θ(anchor) · ∂loss/∂ρ`` from a fresh forward of the anchor rows, whose gradient is the anchors'
        share of the loss's gradient (the reference's log-probs are constants)."""
        ids, cmask = self.anchors.input_ids, self.anchors.completion_mask
        policy = layout.rows_forward(model, self.anchors.attention_mask, input_ids=ids)
        logps = layout.head.token_stats(policy, None, ids, cmask, with_kl=False).per_token_logps
        return (logps * move_to_frame(self.grad, self.frame, cmask)).sum()


@dataclass(frozen=True)
class PendingAnchorBackward:
    """What the anchor step leaves for a deferred backward: the anchors and the detached leaf ``ρ(anchor)`` that
    the loss was built from."""

    anchors: AnchorBatch
    rho: Tensor
    frame: Tensor

    def gradient(self, loss: Tensor) -> AnchorBackward:
        """``∂loss/∂ρ(anchor)``, taken before the main backward frees the loss's graph."""
        (grad,) = torch.autograd.grad(loss, self.rho, retain_graph=True)
        return AnchorBackward(self.anchors, grad, self.frame)


class JointBackward:
    """The anchors' graph joins the main one."""

    name = "joint"

    def scoring_context(self):
        return contextlib.nullcontext()

    def detach(self, rho: Tensor, anchors: AnchorBatch, frame: Tensor) -> tuple[Tensor, None]:
        return rho, None


class DeferredBackward(JointBackward):
    """The anchors are scored without a graph; their backward runs after the main one."""

    name = "deferred"

    def scoring_context(self):
        return torch.no_grad()

    def detach(self, rho: Tensor, anchors: AnchorBatch, frame: Tensor) -> tuple[Tensor, PendingAnchorBackward]:
        leaf = rho.detach().requires_grad_(True)
        return leaf, PendingAnchorBackward(anchors, leaf, frame)


@dataclass(frozen=True)
class AnchorOutcome:
    """The anchor step's result: the triplet term (None with γ = 0), the deferred backward it leaves (or None), and
    ``flags``: ``{"anchor_logits": True}`` when a draw met scores that make no distribution (then there is no
    triplet, and its loss is NaN, so the update guard drops or refuses the update)."""

    triplet: TripletOutput | None = None
    pending: PendingAnchorBackward | None = None
    flags: dict = field(default_factory=dict)

    @property
    def loss(self) -> Tensor | None:
        """Eq. 13's loss for Eq. 14 (None: no triplet term; NaN: the draw failed)."""
        if self.flags:
            return torch.tensor(math.nan)
        return None if self.triplet is None else self.triplet.loss


class AnchorStep:
    """Sample anchors (timed), score them with both models, and take Eq. 13 over the response frames."""

    def __init__(
        self,
        layout,
        reference,
        generation_config: GenerationConfig,
        margin: float,
        backward,
        sampling=None,
        decode: str = "dynamic",
    ):
        self.layout, self.reference, self.config = layout, reference, generation_config
        self.margin, self.backward, self.decode = margin, backward, decode
        # model -> the context of one draw (its seed, gathered parameters; tidpo.training.distributed.AnchorSampling)
        self.sampling = sampling or (lambda model: contextlib.nullcontext())

    def __call__(self, model, batch, policy, ref, rho: Tensor, completion_mask: Tensor, log) -> AnchorOutcome:
        """The triplet of the batch's rows against one fresh anchor per prompt.

        Args:
            rho: ``(2B, L)`` per-token log-ratios of the batch's rows (chosen rows first).
            log: ``(name, value)`` → the step's metrics.
        """
        start = time.perf_counter()
        check = FiniteLogitsCheck(self.config.eos_token_id)
        with self.sampling(self.layout.unwrap(model)):
            anchors = self.layout.sample_anchors(model, batch, policy, self.config, check, self.decode)
        log("time/anchor_sampling", elapsed(start))
        if check.failed():
            return AnchorOutcome(flags={"anchor_logits": torch.tensor(True)})
        with self.backward.scoring_context():
            anchor_policy = self.layout.anchor_policy_features(model, anchors, policy)
        with self.reference.module(model) as ref_model:
            anchor_ref = self.layout.anchor_ref_features(ref_model, anchors, ref)
        ids, cmask = self.layout.anchor_frame(anchors)
        stats = self.layout.head.token_stats(anchor_policy, anchor_ref, ids, cmask, with_kl=False)
        anchor_rho, pending = self.backward.detach(stats.per_token_logps - stats.ref_per_token_logps, anchors, cmask)
        chosen, rejected = (left_align(r, m) for r, m in zip(rho.chunk(2), completion_mask.chunk(2), strict=True))
        log("anchor/length", cmask.sum(-1).float())
        triplet = triplet_loss(*left_align(anchor_rho, cmask), *chosen, *rejected, margin=self.margin)
        return AnchorOutcome(triplet, pending)


class NoAnchors:
    """γ = 0 (or evaluation without ``eval_importance``): no anchors, no triplet term."""

    def __call__(self, *args, **kwargs) -> AnchorOutcome:
        return AnchorOutcome()


def elapsed(start: float) -> float:
    """Seconds since ``start``, after the GPU's queued work (so GPU timings are not just launch times)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start
