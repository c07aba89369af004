"""Tokenisation of preference pairs, hand-checked against the tiny word-level tokenizer (ids in tests/tiny.py).

Ids used below: <unk>=1 <|im_start|>=2 <|im_end|>(EOS)=3 good=9 bad=10 great=11 I=18 hated=28 user=34
assistant=35 system=36 Human:=37 Assistant:=38 tell=45 me=46 about=47 cats=48 dogs=49 are=50 help=56 hello=57
hi=58 "\\n"=64.
"""

from __future__ import annotations

import logging

import pytest
from datasets import Dataset

from tests.data.rows import CHAT, STANDARD, implicit
from tidpo.data import (
    PreferenceDataError,
    tokenize_preference_dataset,
    tokenize_preference_dataset_with_report,
    tokenize_preference_row,
)

CATS_PROMPT = [37, 45, 46, 47, 48, 64, 38]  # "Human: tell me about cats \n Assistant:"
CHAT_CATS_PROMPT = [2, 34, 64, 45, 46, 47, 48, 3, 64, 2, 35, 64]  # user turn, then the generation prompt


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tidpo.data" and r.levelno == logging.WARNING]


def test_standard_ids_get_eos_appended(tokenizer):
    ids = tokenize_preference_row(STANDARD[0], tokenizer)
    assert ids == {"prompt_ids": CATS_PROMPT, "chosen_ids": [48, 50, 9, 3], "rejected_ids": [48, 50, 10, 3]}


def test_eos_already_at_the_end_is_kept_once(tokenizer):
    ids = tokenize_preference_row({**STANDARD[0], "chosen": " cats are good <|im_end|>"}, tokenizer)
    assert ids["chosen_ids"] == [48, 50, 9, 3]


def test_eos_followed_by_words_gets_another_eos(tokenizer):
    ids = tokenize_preference_row({**STANDARD[0], "chosen": " cats <|im_end|> good"}, tokenizer)
    assert ids["chosen_ids"] == [48, 3, 9, 3]


def test_conversational_completion_ends_with_eos_without_trailing_newline(tokenizer):
    ids = tokenize_preference_row(CHAT[0], tokenizer)
    assert ids == {"prompt_ids": CHAT_CATS_PROMPT, "chosen_ids": [48, 50, 9, 3], "rejected_ids": [48, 50, 10, 3]}


def test_multi_turn_completion_keeps_inner_eos(tokenizer):
    chosen = [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hi"}]
    ids = tokenize_preference_row({**CHAT[0], "chosen": chosen}, tokenizer)
    assert ids["chosen_ids"] == [58, 3, 64, 2, 34, 64, 58, 3]


def test_implicit_standard_prompt_matches_explicit(tokenizer):
    assert tokenize_preference_row(implicit(STANDARD)[1], tokenizer) == tokenize_preference_row(STANDARD[1], tokenizer)


def test_implicit_standard_prompt_takes_words_both_replies_share(tokenizer):
    ids = tokenize_preference_row(implicit(STANDARD)[0], tokenizer)  # " cats are good" / " cats are bad"
    assert ids == {"prompt_ids": [*CATS_PROMPT, 48, 50], "chosen_ids": [9, 3], "rejected_ids": [10, 3]}


@pytest.mark.parametrize("index", [0, 1])
def test_implicit_conversational_prompt_matches_explicit(tokenizer, index):
    expected = tokenize_preference_row(CHAT[index], tokenizer)
    assert tokenize_preference_row(implicit(CHAT)[index], tokenizer) == expected


@pytest.mark.parametrize(
    ("chosen", "rejected", "relation"),
    [("a good", "a good", "are identical"), ("a good", "a good movie", "one is a prefix of the other")],
)
def test_implicit_prompt_without_two_responses_is_rejected(tokenizer, chosen, rejected, relation):
    dataset = Dataset.from_list([implicit(STANDARD)[1], {"chosen": chosen, "rejected": rejected}])
    with pytest.raises(PreferenceDataError, match=rf"^train dataset, row 2, fields 'chosen'/'rejected': .*{relation}"):
        tokenize_preference_dataset(dataset, tokenizer)


def test_empty_completion_names_row_and_field(tokenizer):
    dataset = Dataset.from_list([STANDARD[0], {**STANDARD[1], "rejected": "  "}])
    with pytest.raises(PreferenceDataError, match=r"^eval dataset, row 2, field 'rejected': expected a completion"):
        tokenize_preference_dataset(dataset, tokenizer, name="eval")


def test_prompt_reaching_max_length_is_dropped_and_counted(tokenizer, caplog):
    long_prompt = {**STANDARD[1], "prompt": "Human: tell me about dogs today please \n Assistant:"}  # 9 tokens
    dataset = Dataset.from_list([STANDARD[0], long_prompt, STANDARD[1]])  # prompts of 7, 9, 7 tokens
    tokenized, report = tokenize_preference_dataset_with_report(dataset, tokenizer, max_length=8, name="train")
    assert (report.num_dropped, report.num_kept) == (1, 2)
    assert tokenized["prompt"] == [STANDARD[0]["prompt"], STANDARD[1]["prompt"]]
    assert warnings_of(caplog) == [
        "train dataset: dropped 1 of 3 pairs whose prompt alone has >= max_length=8 tokens (no completion token "
        "would survive truncation)."
    ]


def test_tokens_merged_across_the_boundary_are_counted_once(tokenizer, caplog):
    merged = {**STANDARD[0], "chosen": "cats are good"}  # "Assistant:cats" is one (unknown) word
    dataset = Dataset.from_list([STANDARD[1], merged, merged])
    tokenized, report = tokenize_preference_dataset_with_report(dataset, tokenizer)
    assert report.num_boundary_mismatches == 2
    assert tokenized[1]["prompt_ids"] == CATS_PROMPT[:-1]
    assert tokenized[1]["chosen_ids"] == [1, 50, 9, 3]
    (warning,) = warnings_of(caplog)
    assert warning.startswith("train dataset: in 2 of 3 pairs the tokenised prompt is not a prefix")
    assert "Example: row 2 loses 'Assistant:'" in warning


def test_template_rendering_the_prompt_differently_is_counted(tokenizer):
    # Like templates that open an empty "thinking" block in the generation prompt only.
    template = tokenizer.chat_template.replace("assistant \n {% endif %}", "assistant \n yes \n {% endif %}")
    assert template != tokenizer.chat_template
    tokenizer.chat_template = template
    tokenized, report = tokenize_preference_dataset_with_report(Dataset.from_list(CHAT[:1]), tokenizer)
    assert report.num_boundary_mismatches == 1
    assert tokenized[0]["prompt_ids"] == CHAT_CATS_PROMPT
    assert tokenized[0]["chosen_ids"] == [48, 50, 9, 3]


def test_dataset_keeps_its_columns_and_adds_ids(tokenizer):
    dataset = Dataset.from_list([{**row, "source": "hh"} for row in STANDARD])
    tokenized = tokenize_preference_dataset(dataset, tokenizer)
    assert tokenized.column_names == [
        "prompt",
        "chosen",
        "rejected",
        "source",
        "prompt_ids",
        "chosen_ids",
        "rejected_ids",
        "tidpo_row",
    ]
    assert tokenized[0]["rejected_ids"] == [48, 50, 10, 3]
    assert tokenized["tidpo_row"] == list(range(1, len(STANDARD) + 1))  # each pair's row, for messages about it


def test_tokenizer_without_eos_is_rejected(tokenizer):
    tokenizer.eos_token = None
    with pytest.raises(ValueError, match="the tokenizer has no eos_token_id"):
        tokenize_preference_dataset(Dataset.from_list(STANDARD), tokenizer)
