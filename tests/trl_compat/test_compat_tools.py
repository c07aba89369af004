"""Tool-calling data and per-row chat_template_kwargs, rendered as TRL 1.16 renders them (issue 23, rows 4, 5):
the row's ``tools`` and ``chat_template_kwargs`` go to ``apply_chat_template``."""

from __future__ import annotations

import json
import math

from datasets import Dataset

from tests.tiny import make_model
from tests.training.helpers import config
from tests.trl_compat.tool_data import TOOLS, tool_rows, tool_tokenizer
from tidpo import TIDPOTrainer, load_preference_data
from tidpo.data import tokenize_preference_dataset


def _render(tokenizer, messages, **kwargs) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def _newline_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids("\n")


def test_tool_rows_are_rendered_with_the_tools_and_calls():
    tokenizer = tool_tokenizer()
    row = tool_rows(1)[0]
    data = tokenize_preference_dataset(load_preference_data(Dataset.from_list([row])), tokenizer)
    ids = data[0]
    expected_prompt = _render(tokenizer, row["prompt"], tools=TOOLS, add_generation_prompt=True)
    full = _render(tokenizer, row["prompt"] + row["chosen"], tools=TOOLS)
    assert ids["prompt_ids"] == expected_prompt
    assert ids["prompt_ids"] + ids["chosen_ids"] == full[:-1]  # the template's "\n" after the last EOS is cut
    assert full[-1] == _newline_id(tokenizer)
    weather = tokenizer.convert_tokens_to_ids("weather")
    assert ids["prompt_ids"][3] == weather  # the tools' system turn: "<|im_start|> system \n weather"
    assert ids["chosen_ids"][0] == weather and ids["chosen_ids"].count(weather) == 2  # the call, then the answer


def test_tools_as_a_list_column_equal_tools_as_json():
    tokenizer = tool_tokenizer()
    as_json = tokenize_preference_dataset(load_preference_data(Dataset.from_list(tool_rows(2))), tokenizer)
    as_list = tokenize_preference_dataset(load_preference_data(tool_rows(2, tools_as_json=False)), tokenizer)
    assert as_json["prompt_ids"] == as_list["prompt_ids"] and as_json["chosen_ids"] == as_list["chosen_ids"]


def test_chat_template_kwargs_column_is_passed_per_row():
    tokenizer = tool_tokenizer()
    rows = [
        {
            "prompt": [{"role": "user", "content": "hello"}],
            "chosen": [{"role": "assistant", "content": "hi"}],
            "rejected": [{"role": "assistant", "content": "no"}],
            "chat_template_kwargs": {"shout": shout},
        }
        for shout in (True, False)
    ]
    data = tokenize_preference_dataset(load_preference_data(Dataset.from_list(rows)), tokenizer)
    for row, ids in zip(rows, data, strict=True):
        kwargs = row["chat_template_kwargs"]
        assert ids["prompt_ids"] == _render(tokenizer, row["prompt"], add_generation_prompt=True, **kwargs)
        assert ids["prompt_ids"] + ids["chosen_ids"] == _render(tokenizer, row["prompt"] + row["chosen"], **kwargs)[:-1]
    exclaim = tokenizer.convert_tokens_to_ids("!")
    assert exclaim in data[0]["prompt_ids"] and exclaim not in data[1]["prompt_ids"]


def test_training_on_tool_data(tmp_path):
    tokenizer = tool_tokenizer()
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, max_steps=1),
        train_dataset=tool_rows(4),
        processing_class=tokenizer,
    )
    assert math.isfinite(trainer.train().training_loss)


def test_tool_data_from_a_jsonl_file(tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in tool_rows(3)), encoding="utf-8")
    data = load_preference_data(path)
    assert data.num_rows == 3 and json.loads(data[0]["tools"]) == TOOLS
