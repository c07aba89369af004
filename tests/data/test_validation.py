"""load_preference_data rejects bad rows with a message naming the source, the row and the field."""

from __future__ import annotations

import csv

import pytest
from datasets import Dataset

from tests.data.rows import CHAT, STANDARD, write_jsonl
from tidpo.data import PreferenceDataError, load_preference_data

GOOD = STANDARD[0]


def load_jsonl_error(tmp_path, rows) -> str:
    with pytest.raises(PreferenceDataError) as info:
        load_preference_data(write_jsonl(tmp_path / "data.jsonl", rows))
    return str(info.value)


def test_missing_field_names_file_line_and_field(tmp_path):
    message = load_jsonl_error(tmp_path, [GOOD, {"prompt": "hi", "chosen": "ok"}])
    assert message.startswith(f"{tmp_path / 'data.jsonl'}, line 2, field 'rejected': expected a non-empty string")
    assert message.endswith("got nothing (the row has no 'rejected')")


def test_wrong_type_names_expected_and_found(tmp_path):
    message = load_jsonl_error(tmp_path, [GOOD, GOOD, {**GOOD, "chosen": 7}])
    assert message.endswith(
        "data.jsonl, line 3, field 'chosen': expected a non-empty string (standard format, as in line 1), got int"
    )


def test_empty_string_is_rejected(tmp_path):
    message = load_jsonl_error(tmp_path, [GOOD, {**GOOD, "prompt": ""}])
    assert message.endswith(
        "line 2, field 'prompt': expected a non-empty string (standard format, as in line 1), got an empty string"
    )


def test_mixed_formats_are_rejected(tmp_path):
    message = load_jsonl_error(tmp_path, [GOOD, CHAT[0]])
    assert message.endswith(
        "line 2, field 'prompt': expected a non-empty string (standard format, as in line 1), got list"
    )


def test_message_without_content_is_rejected(tmp_path):
    bad = {**CHAT[0], "rejected": [{"role": "assistant", "text": "no"}]}
    message = load_jsonl_error(tmp_path, [CHAT[0], bad])
    assert "data.jsonl, line 2, field 'rejected'" in message
    assert message.endswith("(conversational format, as in line 1), got a list whose message 1 has no 'content'")


def test_prompt_in_a_later_row_of_implicit_data_is_rejected(tmp_path):
    message = load_jsonl_error(tmp_path, [{"chosen": "a", "rejected": "b"}, GOOD])
    assert message.endswith("line 2, field 'prompt': expected no prompt (implicit prompt, as in line 1), got str")


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n{"prompt": "a", "chosen": \n')
    with pytest.raises(PreferenceDataError, match=r"data\.jsonl, line 3: not valid JSON"):
        load_preference_data(path)


def test_blank_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, [GOOD])
    path.write_text(path.read_text() + '\n\n{"prompt": "a", "chosen": "", "rejected": "c"}\n')
    with pytest.raises(PreferenceDataError, match=r"data\.jsonl, line 4, field 'chosen'"):
        load_preference_data(path)


def test_json_array_names_row(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]')
    with pytest.raises(PreferenceDataError, match=r"data\.json, row 2, field 'rejected'"):
        load_preference_data(path)


def test_csv_empty_cell_names_row(tmp_path):
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([["prompt", "chosen", "rejected"], ["a", "b", "c"], ["a", "", "c"]])
    with pytest.raises(PreferenceDataError, match=r"data\.csv, row 2, field 'chosen': .* got an empty string"):
        load_preference_data(path)


def test_dataset_row_is_named_by_position():
    dataset = Dataset.from_list([GOOD, GOOD, {**GOOD, "rejected": None}])
    with pytest.raises(PreferenceDataError, match=r"^<Dataset>, row 3, field 'rejected': .* got None$"):
        load_preference_data(dataset)


def test_dataset_without_required_column_lists_columns():
    dataset = Dataset.from_list([{"prompt": "a", "chosen": "b"}])
    with pytest.raises(PreferenceDataError, match=r"missing required column\(s\) \['rejected'\]"):
        load_preference_data(dataset)


def test_first_row_of_unknown_format_is_rejected():
    with pytest.raises(PreferenceDataError, match=r"row 1, field 'chosen': expected .* \(standard format\) or"):
        load_preference_data(Dataset.from_list([{"chosen": 1, "rejected": 2}]))


def test_empty_file_is_rejected(tmp_path):
    (tmp_path / "data.jsonl").write_text("\n")
    with pytest.raises(PreferenceDataError, match=r"data\.jsonl: no rows"):
        load_preference_data(tmp_path / "data.jsonl")
