"""The trainer's datasets: preference data in any accepted form, tokenised once, with the token-weight columns the
estimator reads, before the Trainer sees them; and a collator of one's own probed for shared prompts."""

from __future__ import annotations

from datasets import IterableDataset

from tidpo.data import PreferenceCollator, add_token_weight_columns, load_preference_data, tokenize_preference_dataset
from tidpo.data.sampling import is_tokenized
from tidpo.data.streaming import tokenize_streaming
from tidpo.training.config import TIDPOConfig


def map_eval(eval_dataset, fn):
    """``fn(dataset, name)`` on the eval dataset, or on each of a dict of them."""
    if isinstance(eval_dataset, dict):
        return {k: fn(v, k) for k, v in eval_dataset.items()}
    return fn(eval_dataset, "eval")


def prepare_dataset(dataset, tokenizer, args: TIDPOConfig, name: str):
    """``dataset`` loaded (:func:`tidpo.data.load_preference_data`) and tokenised, or, when already tokenised, as it
    is; with the dataset's token weights checked and aligned with the ids where the step reads them: in training,
    and at evaluation only with ``eval_importance`` (else uniform weights, and the columns are ignored)."""
    if dataset is None:
        return None
    weights = args.needs_weight_columns and (name == "train" or args.eval_importance)
    if isinstance(dataset, IterableDataset):
        if weights:
            raise ValueError(
                f"{name} dataset: importance={args.importance!r} checks the weight columns against every row before "
                "training, which streaming data (an IterableDataset) cannot give: load it as a Dataset"
            )
        return tokenize_streaming(dataset, tokenizer, _drop_at(args), name)
    zero_ok = args.allows_zero_weight_rows
    if is_tokenized(dataset):
        if not weights:
            return dataset
        return add_token_weight_columns(
            dataset, tokenizer.eos_token_id, max_length=args.max_length, allow_all_zero=zero_ok, name=name
        )
    dataset = load_preference_data(dataset, split=name if name != "eval" else "test")
    return tokenize_preference_dataset(
        dataset,
        tokenizer,
        max_length=_drop_at(args),
        name=name,
        weight_columns=weights,
        allow_zero_weights=zero_ok,
    )


def default_collator(tokenizer, args) -> PreferenceCollator:
    """The trainer's collator when none is given: rows cut at ``max_length`` as ``truncation_mode`` says, padded
    to ``pad_to_multiple_of``."""
    return PreferenceCollator(
        tokenizer.pad_token_id, args.max_length, args.pad_to_multiple_of, truncation_mode=args.truncation_mode
    )


def _drop_at(args: TIDPOConfig) -> int | None:
    """The prompt length from which pairs are dropped: ``max_length`` under keep-start (no completion token would
    survive), none under keep-end (the completion's end is always kept), as in TRL."""
    return args.max_length if args.truncation_mode == "keep_start" else None


def collator_problem(collator, share_prompt, dataset, batch_size: int) -> str | None:
    """Why ``collator``'s batches cannot be split into shared prompts (None when they can). A collator of one's own
    is probed on the first batch only when ``share_prompt=True`` was asked for."""
    from tidpo.training.prompt_cache import PromptSharing

    if isinstance(collator, PreferenceCollator):
        return None
    kind = type(collator).__name__
    if share_prompt is not True:
        return f"the data collator is a {kind}, not tidpo's PreferenceCollator"
    if dataset is None or isinstance(dataset, dict | IterableDataset):
        return None  # nothing to probe: each batch is checked as it comes
    rows = [dataset[i] for i in range(min(batch_size, len(dataset)))]
    if PromptSharing.from_batch(collator(rows)) is None:
        return f"the data collator ({kind}) gives batches that are not prompt + response rows"
    return None
