"""Per-token TI-DPO weights of preference pairs, as training computes them (arXiv 2505.19653v3, Eqs. 5–8).

For each pair, the chosen and the rejected response get, token by token: the final weight ``w`` (Eq. 8, mean 1
over the response), its two components over the weighted span, the normalised gradient attribution ``I/ΣI``
(Eqs. 5–6) and the Gaussian prior ``P`` (Eq. 7), the raw attribution ``I``, and the policy's log-probability of
the token. The code path is training's: :func:`tidpo.data.tokenize_preference_dataset`,
:class:`tidpo.data.PreferenceCollator`, one forward of the policy from its input embeddings (eval mode, so dropout
is off), :func:`tidpo.importance.embedding_attributions` and :func:`tidpo.importance.token_weights`.
The result types are in :mod:`tidpo.eval.explanation` (importable from here too); rendering (HTML, PNG) lives in
:mod:`tidpo.eval.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tidpo.data import PreferenceCollator, tokenize_preference_dataset
from tidpo.eval.explanation import Explanation, PairExplanation, ResponseExplanation
from tidpo.importance import gaussian_prior, hybrid_token_weights, target_attributions, token_weights
from tidpo.importance.attribution import last_token_index
from tidpo.importance.target import TargetInputs
from tidpo.importance.targets import attribution_target_spec
from tidpo.ops import per_token_logps

__all__ = [
    "BatchExplanation",
    "Explanation",
    "PairExplanation",
    "ResponseExplanation",
    "explain_batch",
    "explain_pairs",
    "token_texts",
]

_ROW_COLUMN = "_tidpo_explain_row"
_ID_COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids"]


@dataclass
class BatchExplanation:
    """Per-token quantities of one collated batch, each ``(2B, L)`` in the token frame (B chosen rows first).

    Attributes:
        weights: ``w``, exactly ``token_weights("hybrid", ...)``: mean 1 over each response, 0 elsewhere.
        gradient_share: ``I/ΣI`` over the weighted span (the prior where ``ΣI = 0``, as Eq. 8's guard does).
        prior: ``P`` over the weighted span (Eq. 7), sum 1 over it.
        attributions: the raw ``I = ‖∂L_target/∂e_i‖₁`` (Eqs. 5–6).
        logps: ``log π_θ(x_i | x_<i)``.
    """

    weights: Tensor
    gradient_share: Tensor
    prior: Tensor
    attributions: Tensor
    logps: Tensor


def explain_batch(
    model,
    batch: dict[str, Tensor],
    mix: float = 0.7,
    sigma_div: float = 4.0,
    span: str = "response",
    target: str = "max_logit",
):
    """Weights, their components, attributions and log-probs of one collated batch (TRL layout, ``(2B, L)``).

    The policy runs once from detached input embeddings in eval mode (its mode is restored afterwards); only
    ``torch.autograd.grad`` with respect to those embeddings is taken, so no parameter's ``.grad`` is touched.

    Args:
        model: a causal LM (or PEFT model) with ``get_input_embeddings``.
        batch: ``input_ids``, ``attention_mask``, ``completion_mask`` from :class:`PreferenceCollator`.
        mix: ``λ``. sigma_div: ``T / σ`` of the prior. span: ``"response"`` or ``"sequence"``.
        target: the attribution target, a name of :data:`tidpo.importance.TARGETS` (``"max_logit"``: Eq. 5).

    Returns:
        :class:`BatchExplanation`, float32 tensors on CPU.
    """
    device = next(model.parameters()).device
    input_ids, attention_mask, completion_mask = (
        batch[key].to(device) for key in ("input_ids", "attention_mask", "completion_mask")
    )
    logits, attributions = _attributed_forward(model, input_ids, attention_mask, completion_mask, target)
    logps = per_token_logps(logits.detach(), input_ids)
    del logits
    return _weighted(attributions, logps, input_ids, attention_mask, completion_mask, mix, sigma_div, span)


def _attributed_forward(model, input_ids, attention_mask, completion_mask, target: str) -> tuple[Tensor, Tensor]:
    """``(logits, attributions)`` of one forward from detached input embeddings, in eval mode (the model's mode is
    restored afterwards); the attributions ``(2B, L)`` are those of ``target`` (Eqs. 5–6)."""
    spec = attribution_target_spec(target)
    was_training = model.training
    model.eval()
    try:
        embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)  # (2B, L, D)
        with torch.enable_grad():
            logits = model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits
            rows = torch.arange(logits.shape[0], device=logits.device)
            inputs = TargetInputs(
                attention_mask,
                completion_mask,
                lambda m: logits[rows, last_token_index(m)],
                lambda: per_token_logps(logits, input_ids),
            )
            attributions = target_attributions(spec.scalar(inputs), embeds, attention_mask, retain_graph=False)
    finally:
        model.train(was_training)
    return logits, attributions


def _weighted(
    attributions, logps, input_ids, attention_mask, completion_mask, mix: float, sigma_div: float, span: str
) -> BatchExplanation:
    """The final weights (Eq. 8) and their two components of the attributions, with the attributions and log-probs."""
    weights = token_weights(
        "hybrid",
        completion_mask,
        attributions=attributions,
        input_ids=input_ids,
        attention_mask=attention_mask,
        mix=mix,
        sigma_div=sigma_div,
        span=span,
        norm="mean",
    )
    span_mask = completion_mask if span == "response" else attention_mask
    prior = gaussian_prior(span_mask, sigma_div)  # Eq. (7)
    gradient_share = hybrid_token_weights(attributions, span_mask, prior, mix=1.0)  # I/ΣI of Eq. (8)
    return BatchExplanation(*(t.detach().float().cpu() for t in (weights, gradient_share, prior, attributions, logps)))


def token_texts(tokenizer, ids: list[int], context: list[int] | None = None) -> list[str]:
    """The text each token adds, whitespace and newlines kept, so that ``"".join(...)`` is the decoded text.

    Each piece is the difference of successive prefix decodes, after ``context`` (e.g. the last prompt token,
    so that decoders which drop a leading space at the start of a text keep it). A token that ends inside a
    multi-byte character gets ``""`` and the token that completes the character gets all of it.
    """
    context = list(context or [])

    def decode(token_ids: list[int]) -> str:
        return tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    pieces, previous = [], decode(context)
    for end in range(1, len(ids) + 1):
        current = decode(context + ids[:end])
        if current.endswith("\ufffd") and end < len(ids):  # an incomplete UTF-8 character: the next token ends it
            pieces.append("")
        elif current.startswith(previous):
            pieces.append(current[len(previous) :])
            previous = current
        else:  # the decoder rewrote earlier text; fall back to the token alone
            pieces.append(decode(ids[end - 1 : end]))
            previous = current
    return pieces


def explain_pairs(
    model,
    tokenizer,
    dataset,
    n: int = 8,
    *,
    mix: float = 0.7,
    sigma_div: float = 4.0,
    span: str = "response",
    max_length: int | None = 512,
    batch_size: int = 2,
    name: str = "train",
    target: str = "max_logit",
) -> Explanation:
    """Explain the token weights of the first ``n`` pairs of ``dataset`` (pairs whose prompt fills ``max_length``
    are skipped, as training drops them, and later rows take their place).

    Args:
        model: the policy (a causal LM or PEFT model); left in the mode it came in.
        tokenizer: its tokenizer (with a pad token).
        dataset: a checked preference ``datasets.Dataset`` (:func:`tidpo.data.load_preference_data`).
        n: pairs to explain (fewer if the dataset has fewer).
        mix, sigma_div, span: ``importance_mix`` (λ), ``prior_sigma_div``, ``weight_span`` as in training.
        max_length: prompt + response tokens kept per row (keep-start, as the training collator does).
        batch_size: pairs per forward.
        name: the dataset's name in tokenisation messages.
        target: the attribution target (``attribution_target`` in training).
    """
    _check_counts(n, batch_size)
    rows = _tokenized_rows(dataset, tokenizer, n, max_length, name)
    collator = PreferenceCollator(tokenizer.pad_token_id, max_length=max_length)
    settings = {"mix": mix, "sigma_div": sigma_div, "span": span, "target": target}
    batches = (rows[start : start + batch_size] for start in range(0, len(rows), batch_size))
    pairs = [pair for examples in batches for pair in _explained(model, tokenizer, collator, examples, settings)]
    return Explanation(pairs=pairs, mix=mix, sigma_div=sigma_div, span=span, max_length=max_length)


def _explained(model, tokenizer, collator, examples: list[dict[str, Any]], settings: dict) -> list[PairExplanation]:
    """The pairs of ``examples``, collated into one batch and explained with ``settings`` (of :func:`explain_batch`)."""
    batch = collator(examples)
    result = explain_batch(model, batch, **settings)
    return _pairs_from_batch(tokenizer, examples, batch, result, settings["span"])


def _check_counts(n: int, batch_size: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1 pairs, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _tokenized_rows(dataset, tokenizer, n: int, max_length: int | None, name: str) -> list[dict[str, Any]]:
    """The first ``n`` pairs that survive ``max_length``, tokenised, each with its dataset row index."""
    rows: list[dict[str, Any]] = []
    next_row = 0
    while len(rows) < n and next_row < len(dataset):
        stop = min(len(dataset), next_row + n - len(rows))
        part = dataset.select(range(next_row, stop)).add_column(_ROW_COLUMN, list(range(next_row, stop)))
        tokenized = tokenize_preference_dataset(part, tokenizer, max_length=max_length, name=name)
        rows.extend(tokenized.select_columns([_ROW_COLUMN, *_ID_COLUMNS]).to_list())
        next_row = stop
    return rows


def _pairs_from_batch(
    tokenizer, examples: list[dict[str, Any]], batch: dict[str, Tensor], result: BatchExplanation, span: str
) -> list[PairExplanation]:
    num_pairs = len(examples)
    pairs = []
    for b, example in enumerate(examples):
        prompt = tokenizer.decode(example["prompt_ids"], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        sides = [
            _response(tokenizer, batch, result, row, len(example[key]), span)
            for row, key in ((b, "chosen_ids"), (num_pairs + b, "rejected_ids"))
        ]
        pairs.append(PairExplanation(row=int(example[_ROW_COLUMN]), prompt=prompt, chosen=sides[0], rejected=sides[1]))
    return pairs


def _response(tokenizer, batch, result: BatchExplanation, row: int, full_length: int, span: str) -> ResponseExplanation:
    """Row ``row`` of the batch, restricted to its response tokens."""
    mask = batch["completion_mask"][row].bool()
    ids = batch["input_ids"][row][mask].tolist()
    first = int(mask.nonzero()[0])
    span_length = int(mask.sum()) if span == "response" else int(batch["attention_mask"][row].sum())

    def values(t: Tensor) -> list[float]:
        return t[row][mask].tolist()

    return ResponseExplanation(
        tokens=token_texts(tokenizer, ids, context=batch["input_ids"][row][first - 1 : first].tolist()),
        token_ids=ids,
        weights=values(result.weights),
        gradient_share=values(result.gradient_share),
        prior=values(result.prior),
        attributions=values(result.attributions),
        logps=values(result.logps),
        span_length=span_length,
        tokens_cut=full_length - len(ids),
    )
