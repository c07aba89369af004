"""Tokenising one preference pair into prompt and completion ids (TRL's layout).

Prompt and completion are tokenised together, as in TRL 1.16's ``DPOTrainer``, so the completion's first tokens are
the ones the model sees in context:

* standard: ``tokenizer(prompt + completion)`` (with the tokenizer's own special tokens, e.g. a BOS), and the prompt
  alone the same way;
* conversational: ``apply_chat_template(prompt + completion)``, and the prompt alone with
  ``add_generation_prompt=True``.

The completion starts where the tokenised prompt ends. When the tokenised prompt is not a prefix of the tokenised
prompt+completion (tokens merge across the boundary, or the template renders the prompt alone differently), the
completion starts where the two diverge, as in TRL; :mod:`tidpo.data.tokenization` counts such rows and reports
them once per dataset.

Implicit prompts (no ``prompt`` column): for standard rows, the prompt is the longest common token prefix of the
tokenised ``chosen`` and ``rejected`` (so a first word both replies share counts as prompt: text has no turn marks).
Deviation: for conversational rows it is their shared leading *messages*, as in TRL's ``extract_prompt``, then
tokenised as an explicit prompt; a common token prefix would move words that both assistant replies start with
into the prompt, where they get no token weight and where the anchor sampler would be forced to continue them.

Every completion ends with one ``eos_token_id``: docs/method.md §1 reads the attribution target at the response's EOS.
Deviation from TRL, which appends the EOS *string* to standard text and keeps a conversational completion as the
template renders it (often ``<|im_end|>\\n``): the whitespace a template writes after the final EOS is cut, so the
last response token is the EOS in both formats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidpo.data.errors import PreferenceDataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TokenizedPair:
    """One tokenised preference pair.

    Attributes:
        prompt_ids: the prompt tokens, as they start both full sequences.
        chosen_ids: the chosen completion's tokens, ending with one EOS.
        rejected_ids: the rejected completion's tokens, ending with one EOS.
        prompt_tail: tokens of the prompt tokenised alone that are missing from the full sequences; empty unless
            the boundary moved (see the module docstring).
    """

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    prompt_tail: list[int]


def common_prefix_length(ids: Sequence[Any], other: Sequence[Any]) -> int:
    """Number of leading items the two sequences share."""
    length = 0
    for item, other_item in zip(ids, other, strict=False):
        if item != other_item:
            break
        length += 1
    return length


def tokenize_pair(row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, where: str = "the row") -> TokenizedPair:
    """Tokenises one preference row (explicit or implicit prompt, standard or conversational).

    Args:
        row: ``chosen``, ``rejected`` and, for an explicit prompt, ``prompt`` (a missing or None ``prompt`` means
            implicit).
        tokenizer: a tokenizer with an ``eos_token_id`` (and a chat template, for conversational rows).
        where: how error messages name the row, e.g. ``"train dataset, row 7"``.

    Returns:
        The prompt and completion ids, and the prompt tokens lost to a boundary mismatch.

    Raises:
        PreferenceDataError: the fields mix formats, an implicit prompt cannot be found, the prompt tokenises to
            nothing in common with the full sequences, or a completion is empty after tokenisation.
    """
    check_eos(tokenizer)
    prompt_ids, prompt_chosen_ids, prompt_rejected_ids = _full_sequences(row, tokenizer, where)
    prompt_length = min(
        common_prefix_length(prompt_ids, prompt_chosen_ids), common_prefix_length(prompt_ids, prompt_rejected_ids)
    )
    if prompt_length == 0:
        raise PreferenceDataError(
            f"{where}, field 'prompt': the tokenised prompt {prompt_ids} does not start the tokenised "
            f"prompt+completion ({prompt_chosen_ids}), so no prompt is left to condition on"
        )
    return TokenizedPair(
        prompt_ids=prompt_ids[:prompt_length],
        chosen_ids=_completion_with_eos(prompt_chosen_ids[prompt_length:], tokenizer, f"{where}, field 'chosen'"),
        rejected_ids=_completion_with_eos(prompt_rejected_ids[prompt_length:], tokenizer, f"{where}, field 'rejected'"),
        prompt_tail=prompt_ids[prompt_length:],
    )


def tokenize_preference_row(
    row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, where: str = "the row"
) -> dict[str, list[int]]:
    """Tokenises one preference row into TRL's ``prompt_ids``, ``chosen_ids`` and ``rejected_ids``.

    Args:
        row: as in :func:`tokenize_pair`.
        tokenizer: as in :func:`tokenize_pair`.
        where: how error messages name the row.

    Returns:
        ``{"prompt_ids", "chosen_ids", "rejected_ids"}``; each completion ends with ``tokenizer.eos_token_id``.
    """
    pair = tokenize_pair(row, tokenizer, where)
    return {"prompt_ids": pair.prompt_ids, "chosen_ids": pair.chosen_ids, "rejected_ids": pair.rejected_ids}


def _full_sequences(
    row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, where: str
) -> tuple[list[int], list[int], list[int]]:
    """Token ids of the prompt alone, of prompt + chosen and of prompt + rejected."""
    prompt, chosen, rejected = row.get("prompt"), row["chosen"], row["rejected"]
    present = [value for value in (prompt, chosen, rejected) if value is not None]
    if not (all(isinstance(value, str) for value in present) or all(isinstance(value, list) for value in present)):
        found = {field: type(row.get(field)).__name__ for field in ("prompt", "chosen", "rejected")}
        raise PreferenceDataError(
            f"{where}: expected prompt, chosen and rejected to be all strings (standard format) or all lists of "
            f"messages (conversational format), got {found}"
        )
    template = chat_template_arguments(row)
    if prompt is not None:
        return _explicit_sequences(prompt, chosen, rejected, tokenizer, template)
    if isinstance(chosen, list):
        return _implicit_chat_sequences(chosen, rejected, tokenizer, where, template)
    return _implicit_text_sequences(chosen, rejected, tokenizer, where)


def _explicit_sequences(
    prompt: str | list,
    chosen: str | list,
    rejected: str | list,
    tokenizer: PreTrainedTokenizerBase,
    template: Mapping[str, Any] | None = None,
) -> tuple[list[int], list[int], list[int]]:
    """The prompt alone (with the generation prompt, for messages), prompt + chosen and prompt + rejected."""
    if isinstance(prompt, str):
        return (
            _encode_text(prompt, tokenizer),
            _encode_text(prompt + chosen, tokenizer),
            _encode_text(prompt + rejected, tokenizer),
        )
    return (
        _encode_chat(prompt, tokenizer, template, add_generation_prompt=True),
        _encode_chat(prompt + chosen, tokenizer, template),
        _encode_chat(prompt + rejected, tokenizer, template),
    )


def _implicit_text_sequences(
    chosen: str, rejected: str, tokenizer: PreTrainedTokenizerBase, where: str
) -> tuple[list[int], list[int], list[int]]:
    """Standard rows without a prompt: the prompt is the tokens ``chosen`` and ``rejected`` start with."""
    chosen_ids, rejected_ids = _encode_text(chosen, tokenizer), _encode_text(rejected, tokenizer)
    shared = common_prefix_length(chosen_ids, rejected_ids)
    _check_implicit_split(shared, len(chosen_ids), len(rejected_ids), "tokens", where)
    return chosen_ids[:shared], chosen_ids, rejected_ids


def _implicit_chat_sequences(
    chosen: list, rejected: list, tokenizer: PreTrainedTokenizerBase, where: str, template: Mapping[str, Any]
) -> tuple[list[int], list[int], list[int]]:
    """Conversational rows without a prompt: the prompt is the messages ``chosen`` and ``rejected`` start with."""
    shared = common_prefix_length(chosen, rejected)
    _check_implicit_split(shared, len(chosen), len(rejected), "messages", where)
    return _explicit_sequences(chosen[:shared], chosen[shared:], rejected[shared:], tokenizer, template)


def _check_implicit_split(shared: int, chosen_length: int, rejected_length: int, unit: str, where: str) -> None:
    """Raises unless chosen and rejected share a non-empty start and both go on past it."""
    if shared == 0:
        raise PreferenceDataError(
            f"{where}, fields 'chosen'/'rejected': implicit prompt, but chosen and rejected share no leading {unit}, "
            "so there is no prompt; give a 'prompt' column"
        )
    if shared == chosen_length or shared == rejected_length:
        relation = "are identical" if chosen_length == rejected_length else "are such that one is a prefix of the other"
        raise PreferenceDataError(
            f"{where}, fields 'chosen'/'rejected': implicit prompt, but chosen and rejected {relation} "
            f"({chosen_length} and {rejected_length} {unit}, {shared} shared), so one has no response after the "
            "shared prompt"
        )


def _encode_text(text: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def chat_template_arguments(row: Mapping[str, Any]) -> dict[str, Any]:
    """The chat template's extra arguments of a row, as TRL passes them: ``tools`` (the ``tools`` column, a list
    of tool schemas or its JSON text) and the ``chat_template_kwargs`` column's entries. Keys whose value is None
    are left out: Arrow writes None for a key that only other rows have."""
    tools = row.get("tools")
    if isinstance(tools, str):
        tools = json.loads(tools)
    kwargs = {"tools": tools} if tools else {}
    kwargs.update({k: v for k, v in (row.get("chat_template_kwargs") or {}).items() if v is not None})
    return kwargs


def _encode_chat(
    messages: list,
    tokenizer: PreTrainedTokenizerBase,
    template: Mapping[str, Any] | None = None,
    add_generation_prompt: bool = False,
) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt, **(template or {})
    )
    return list(encoded["input_ids"])


def _completion_with_eos(ids: list[int], tokenizer: PreTrainedTokenizerBase, where: str) -> list[int]:
    """The completion's tokens ending with exactly one EOS (the rule is in the module docstring)."""
    content = _before_final_eos(ids, tokenizer)
    if not content:
        raise PreferenceDataError(
            f"{where}: expected a completion with at least one token before its EOS, got {ids} after tokenisation "
            f"({tokenizer.decode(ids)!r})"
        )
    return content + [tokenizer.eos_token_id]


def _before_final_eos(ids: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``ids`` without its last EOS when only whitespace tokens follow that EOS; otherwise ``ids`` unchanged."""
    eos = tokenizer.eos_token_id
    if eos not in ids:
        return ids
    last = len(ids) - 1 - ids[::-1].index(eos)
    if all(not tokenizer.decode([token]).strip() for token in ids[last + 1 :]):
        return ids[:last]
    return ids


def check_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    """Raises ``ValueError`` unless the tokenizer has the EOS id that every completion ends with."""
    if tokenizer.eos_token_id is None:
        raise ValueError(
            "the tokenizer has no eos_token_id; TI-DPO reads each response's final EOS, so set tokenizer.eos_token "
            "(for chat models, the token that ends an assistant turn)"
        )
