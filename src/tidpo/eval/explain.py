"""Per-token TI-DPO weights of preference pairs, as training computes them (arXiv 2505.19653v3, Eqs. 5–8).

For each pair, the chosen and the rejected response get, token by token: the final weight ``w`` (Eq. 8, mean 1
over the response) of the chosen estimator (``importance``, training's), its two components over the weighted span,
the estimator's scores' share ``I/ΣI`` (for ``hybrid``, the normalised gradient attribution of Eqs. 5–6) and the
Gaussian prior ``P`` (Eq. 7), the raw scores ``I``, and the policy's log-probability of the token. The code path is
training's: :func:`tidpo.data.tokenize_preference_dataset`, :class:`tidpo.data.PreferenceCollator`, one forward of
the policy in eval mode (dropout off) and :func:`tidpo.importance.token_weights` (the batch's numbers:
:mod:`tidpo.eval.explain_batch`). The result types are in :mod:`tidpo.eval.explanation` (importable from here
too); rendering (HTML, PNG) lives in :mod:`tidpo.eval.render`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from tidpo.data import PreferenceCollator, tokenize_preference_dataset
from tidpo.data.tokenization import PRIVATE_PREFIX
from tidpo.eval.explain_batch import BatchExplanation, explain_batch
from tidpo.eval.explanation import Explanation, PairExplanation, ResponseExplanation
from tidpo.importance.weights import estimator_spec

__all__ = [
    "BatchExplanation",
    "Explanation",
    "PairExplanation",
    "ResponseExplanation",
    "explain_batch",
    "explain_pairs",
    "token_texts",
]

_ROW_COLUMN = PRIVATE_PREFIX + "explain_row"  # kept out of the unused-column warning
_ID_COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids"]


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
    importance: str = "hybrid",
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
        importance: the estimator (``importance`` in training; :mod:`tidpo.eval.explain_batch` says what each
            shows).
    """
    _check_counts(n, batch_size)
    rows = _tokenized_rows(dataset, tokenizer, n, max_length, name)
    collator = PreferenceCollator(tokenizer.pad_token_id, max_length=max_length)
    settings = {"mix": mix, "sigma_div": sigma_div, "span": span, "target": target, "importance": importance}
    batches = (rows[start : start + batch_size] for start in range(0, len(rows), batch_size))
    pairs = [pair for examples in batches for pair in _explained(model, tokenizer, collator, examples, settings)]
    spec = estimator_spec(importance)
    return Explanation(
        pairs=pairs,
        mix=mix,
        sigma_div=sigma_div,
        span=span,
        max_length=max_length,
        importance=importance,
        attributed="attributions" in spec.needs,
        scores_help=spec.help,
    )


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
