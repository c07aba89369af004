"""Property-based tests (hypothesis) of the loader, the tokeniser and the collator: any input either loads into
well-formed batches or raises PreferenceDataError, never another exception, and a pair that survives tokenisation
always collates."""

from __future__ import annotations

import json

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tiny import WORDS, make_tokenizer
from tidpo.data import PreferenceCollator, PreferenceDataError, load_preference_data, tokenize_preference_dataset

TOKENIZER = make_tokenizer()
VOCAB = [w for w in WORDS if w.strip()]
words = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=12).map(lambda ws: " ".join(ws))
texts = st.one_of(words, words.map(lambda t: " " + t), st.text(max_size=12), st.just(""), st.just("  "))
roles = st.sampled_from(["user", "assistant", "system", "tool", "asistant", ""])
message = st.fixed_dictionaries({"role": roles, "content": texts}) | st.fixed_dictionaries({"role": roles})
messages = st.lists(message, min_size=0, max_size=3)
values = st.one_of(texts, messages, st.none(), st.integers(), st.floats(allow_nan=True), st.lists(st.integers()),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))  # fmt: skip
row = st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "extra"]), values, max_size=4)
good_standard = st.fixed_dictionaries({"prompt": words.filter(str.strip), "chosen": words.map(lambda t: " " + t),
                                       "rejected": words.map(lambda t: " " + t)})  # fmt: skip
line = st.one_of(row.map(json.dumps), good_standard.map(json.dumps), st.text(max_size=20))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _well_formed(batch: dict, rows: int, max_length: int) -> None:
    ids, mask, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    assert ids.shape == mask.shape == completion.shape and ids.shape[0] == 2 * rows and ids.shape[1] <= max_length
    lengths = mask.sum(-1)
    assert torch.equal(mask, (torch.arange(ids.shape[1]) < lengths[:, None]).long())  # right padding, no holes
    assert bool((completion <= mask).all()) and bool((completion.sum(-1) >= 1).all())  # a response token in each row
    prompt_mask = batch["prompt_attention_mask"]
    assert prompt_mask.shape[0] == rows and bool((prompt_mask.sum(-1) >= 1).all())
    width = prompt_mask.shape[1]
    assert torch.equal(prompt_mask, (torch.arange(width) >= width - prompt_mask.sum(-1)[:, None]).long())  # left


def _check_pipeline(path, max_length: int, skip: bool) -> None:
    try:
        data = load_preference_data(path, on_bad_row="skip" if skip else "error")
        tokenized = tokenize_preference_dataset(data, TOKENIZER, max_length=max_length, name="train")
    except PreferenceDataError:
        return
    collate = PreferenceCollator(TOKENIZER.pad_token_id, max_length=max_length)
    for start in range(0, len(tokenized), 3):
        chunk = [tokenized[i] for i in range(start, min(start + 3, len(tokenized)))]
        _well_formed(collate(chunk), len(chunk), max_length)


@SETTINGS
@given(lines=st.lists(line, min_size=0, max_size=6), max_length=st.integers(2, 40), skip=st.booleans())
def test_any_jsonl_loads_into_well_formed_batches_or_raises_our_error(tmp_path_factory, lines, max_length, skip):
    path = tmp_path_factory.mktemp("prop") / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _check_pipeline(path, max_length, skip)


@SETTINGS
@given(pairs=st.lists(good_standard, min_size=1, max_size=6), max_length=st.integers(2, 40))
def test_valid_pairs_always_collate(tmp_path_factory, pairs, max_length):
    """Pairs that pass the loader: every one that tokenisation keeps collates, whatever max_length cuts."""
    path = tmp_path_factory.mktemp("prop") / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    try:
        data = load_preference_data(path)
    except PreferenceDataError as err:  # only the contract's own refusals (identical or blank responses)
        assert "identical" in str(err) or "whitespace" in str(err) or "empty" in str(err), err
        return
    tokenized = tokenize_preference_dataset(data, TOKENIZER, max_length=max_length, name="train")
    if len(tokenized):
        batch = PreferenceCollator(TOKENIZER.pad_token_id, max_length=max_length)([tokenized[i] for i in
                                                                                   range(len(tokenized))])  # fmt: skip
        _well_formed(batch, len(tokenized), max_length)
