"""Oracle: tokenisation and batches equal TRL 1.16's DPOTrainer preparation and DataCollatorForPreference.

One difference is deliberate (see tidpo.data.tokenization): TRL keeps the whitespace a chat template writes after
the final EOS (here one "\\n" token, id 64); tidpo cuts it so that every response ends on its EOS.
"""

from __future__ import annotations

import pytest
import trl
from datasets import Dataset

from tests.data.rows import CHAT, STANDARD
from tests.tiny import make_model, make_tokenizer
from tidpo.data import PreferenceCollator, tokenize_preference_dataset

MAX_LENGTH = 16  # drops the two long prompts below, keeps every other pair
LONG_PROMPT = "Human: tell me about the weather today please and thanks , tell me about dogs \n Assistant:"
STANDARD_ROWS = [*STANDARD, {"prompt": LONG_PROMPT, "chosen": " ok", "rejected": " no"}]
CHAT_ROWS = [
    *CHAT,
    {**CHAT[0], "chosen": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hello"}]},
    {**CHAT[1], "prompt": [{"role": "user", "content": "tell me about the weather today please and thanks"}]},
]
ID_COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids"]


@pytest.fixture(scope="module")
def trl_datasets(tmp_path_factory) -> tuple[Dataset, Dataset]:
    """TRL's prepared (standard, conversational) datasets, from a DPOTrainer on the tiny model."""
    tokenizer = make_tokenizer()
    args = trl.DPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl")), report_to="none", use_cpu=True, max_length=MAX_LENGTH
    )
    trainer = trl.DPOTrainer(
        model=make_model(tokenizer),
        ref_model=make_model(tokenizer),
        args=args,
        train_dataset=Dataset.from_list(STANDARD_ROWS),
        eval_dataset=Dataset.from_list(CHAT_ROWS),
        processing_class=tokenizer,
    )
    return trainer.train_dataset, trainer.eval_dataset


def ours(rows: list[dict]) -> Dataset:
    return tokenize_preference_dataset(Dataset.from_list(rows), make_tokenizer(), max_length=MAX_LENGTH)


def test_standard_ids_and_dropped_rows_equal_trl(trl_datasets):
    expected = trl_datasets[0].select_columns(ID_COLUMNS).to_list()
    assert len(expected) == len(STANDARD_ROWS) - 1
    assert ours(STANDARD_ROWS).select_columns(ID_COLUMNS).to_list() == expected


def test_conversational_ids_equal_trl_up_to_the_newline_after_eos(trl_datasets):
    expected = trl_datasets[1].select_columns(ID_COLUMNS).to_list()
    assert len(expected) == len(CHAT_ROWS) - 1
    for row in expected:
        assert row["chosen_ids"][-2:] == row["rejected_ids"][-2:] == [3, 64]
        row["chosen_ids"], row["rejected_ids"] = row["chosen_ids"][:-1], row["rejected_ids"][:-1]
    assert ours(CHAT_ROWS).select_columns(ID_COLUMNS).to_list() == expected


@pytest.mark.parametrize("max_length", [None, 9])
@pytest.mark.parametrize("pad_to_multiple_of", [None, 8])
@pytest.mark.parametrize("truncation_mode", ["keep_start", "keep_end"])
def test_collator_equals_trl(max_length, pad_to_multiple_of, truncation_mode):
    examples = ours(STANDARD_ROWS).select_columns(ID_COLUMNS).to_list()  # max_length 9 cuts the second pair
    examples = [{**ex, "ref_chosen_logps": -1.0 - i, "ref_rejected_logps": -0.5 * i} for i, ex in enumerate(examples)]
    kwargs = {"pad_token_id": 0, "max_length": max_length, "pad_to_multiple_of": pad_to_multiple_of}
    kwargs["truncation_mode"] = truncation_mode
    batch = PreferenceCollator(**kwargs)(examples)
    expected = trl.trainer.dpo_trainer.DataCollatorForPreference(**kwargs)(examples)
    assert set(batch) - set(expected) == {"prompt_input_ids", "prompt_attention_mask"}
    for key, value in expected.items():
        assert batch[key].dtype == value.dtype and batch[key].tolist() == value.tolist(), key
