"""Bad rows: each kind is one PreferenceDataError naming the file, the row and the field; with on_bad_row='skip'
the row is left out and counted instead."""

from __future__ import annotations

import json

import pytest

from tidpo.data import PreferenceDataError, load_preference_data

GOOD = {"prompt": "Say hi.", "chosen": " Hi there!", "rejected": " Go away."}
USER = {"role": "user", "content": "Say hi."}
ASSISTANT = {"role": "assistant", "content": "Hi there!"}
RUDE = {"role": "assistant", "content": "Go away."}


def _jsonl(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    "row, match",
    [
        ({**GOOD, "chosen": "   \n"}, r"line 2, field 'chosen': .*a string of only whitespace"),
        ({"prompt": [USER], "chosen": [{"role": "asistant", "content": "Hi"}], "rejected": [RUDE]},
         r"line 2, field 'chosen': message 1 has role 'asistant'"),
        ({"prompt": [USER], "chosen": [{"role": "user", "content": "Hi"}], "rejected": [RUDE]},
         r"line 2, field 'chosen': the response must end with an 'assistant' message, its last is 'user'"),
        ({"prompt": [USER, ASSISTANT], "chosen": [ASSISTANT], "rejected": [RUDE]},
         r"line 2, field 'prompt': the prompt ends with an 'assistant' message"),
        ({"prompt": [USER, {"role": "system", "content": "be nice"}], "chosen": [ASSISTANT], "rejected": [RUDE]},
         r"line 2, field 'prompt': message 2 is a 'system' message after the first"),
        ({"prompt": [USER], "chosen": [USER, ASSISTANT], "rejected": [RUDE]},
         r"line 2, field 'chosen': holds a 'user' message"),
        ({"prompt": [USER], "chosen": [{"role": "assistant", "content": "  "}], "rejected": [RUDE]},
         r"line 2, field 'chosen': message 1 \(the assistant's\) has only whitespace"),
        ({"prompt": [USER], "chosen": [{"role": "assistant"}], "rejected": [RUDE]},
         r"line 2, field 'chosen': .*message 1 has no 'content'"),
    ],
)  # fmt: skip
def test_bad_row_names_file_row_and_field(tmp_path, row, match):
    first = GOOD if isinstance(row["chosen"], str) else {"prompt": [USER], "chosen": [ASSISTANT], "rejected": [RUDE]}
    path = _jsonl(tmp_path, [first, row])
    with pytest.raises(PreferenceDataError, match=match) as err:
        load_preference_data(path)
    assert str(path) in str(err.value)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"prompt": "caf\xe9", "chosen": " a", "rejected": " b"}\n')
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl, line 2: not UTF-8 text \(byte 0xe9"):
        load_preference_data(path)


def test_bom_and_crlf_load(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n" + json.dumps({**GOOD, "prompt": "Yo."}).encode()
    )
    data = load_preference_data(path)
    assert data["prompt"] == ["Say hi.", "Yo."] and data["rejected"][0] == " Go away."


def test_json_object_of_columns_loads_as_rows(tmp_path):
    path = tmp_path / "columns.json"  # one list per column, as json.dump(frame.to_dict("list")) writes
    path.write_text(
        json.dumps({"prompt": ["Say hi.", "Yo."], "chosen": [" Hi!", " Hey."], "rejected": [" No.", " Go."]})
    )
    data = load_preference_data(path)
    assert data["prompt"] == ["Say hi.", "Yo."] and data["rejected"] == [" No.", " Go."]
    path.write_text(json.dumps({"prompt": ["Say hi.", "Yo."], "chosen": [" Hi!"], "rejected": [" No.", " Go."]}))
    with pytest.raises(PreferenceDataError, match=r"columns\.json: an object of columns whose lengths differ"):
        load_preference_data(path)
    with pytest.raises(PreferenceDataError, match=r"columns\.json, row 2, field 'chosen': expected a non-empty"):
        path.write_text(json.dumps({"prompt": ["Say hi.", "Yo."], "chosen": [" Hi!", 3], "rejected": [" No.", " x"]}))
        load_preference_data(path)


def test_json_object_of_messages_is_one_conversational_row(tmp_path):
    row = {
        "prompt": [{"role": "user", "content": "Say hi."}],
        "chosen": [{"role": "assistant", "content": "Hi!"}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(row))  # every value is a list, but of messages: not columns
    assert load_preference_data(path)[0] == row


@pytest.mark.parametrize(
    "name, text", [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("header.csv", "prompt,chosen,rejected\n")]
)
def test_no_rows(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PreferenceDataError, match="no rows"):
        load_preference_data(path)


def test_skip_leaves_bad_rows_out_and_counts_them(tmp_path, caplog):
    rows = [
        GOOD,
        {**GOOD, "chosen": " "},
        "{not json",
        {**GOOD, "prompt": "Again."},
        {**GOOD, "rejected": ""},
    ]
    path = _jsonl(tmp_path, rows)
    skipped: list[str] = []
    data = load_preference_data(path, on_bad_row="skip", skipped=skipped)
    assert data["prompt"] == ["Say hi.", "Again."]
    assert len(skipped) == 3
    assert "line 3: not valid JSON" in skipped[0] and "line 2, field 'chosen'" in skipped[1] and "line 5" in skipped[2]
    assert "skipped 3 of 5 rows" in caplog.text
    with pytest.raises(PreferenceDataError, match="line 3: not valid JSON"):
        load_preference_data(path)  # the default stops at the first (lines are parsed before rows are checked)


def test_skip_with_every_row_bad_is_an_error(tmp_path):
    path = _jsonl(tmp_path, [{**GOOD, "chosen": ""}, {**GOOD, "rejected": ""}])
    with pytest.raises(PreferenceDataError, match=r"every row is bad \(2\)"):
        load_preference_data(path, on_bad_row="skip")


def test_skip_on_a_dataset_object():
    from datasets import Dataset

    data = Dataset.from_list([GOOD, {**GOOD, "chosen": "\t"}, {**GOOD, "prompt": "Third."}])
    skipped: list[str] = []
    kept = load_preference_data(data, on_bad_row="skip", skipped=skipped)
    assert kept["prompt"] == ["Say hi.", "Third."] and len(skipped) == 1 and "row 2" in skipped[0]


def test_rows_in_memory_list_and_dataframe(caplog):
    import pandas as pd

    rows = [GOOD, {**GOOD, "prompt": "Yo.", "rejected": ""}, 7, {**GOOD, "prompt": "Again."}]
    with pytest.raises(PreferenceDataError, match=r"<rows>, row 2, field 'rejected': expected a non-empty string"):
        load_preference_data([row for row in rows if row != 7])
    with pytest.raises(PreferenceDataError, match=r"<rows>, row 3: expected a mapping, got int"):
        load_preference_data([GOOD, GOOD | {"prompt": "x"}, 7])
    skipped: list[str] = []
    data = load_preference_data(rows, on_bad_row="skip", skipped=skipped)
    assert data["prompt"] == ["Say hi.", "Again."] and len(skipped) == 2 and "skipped 2 of 4 rows" in caplog.text
    frame = pd.DataFrame([GOOD, {**GOOD, "prompt": "Yo."}])
    assert load_preference_data(frame)["prompt"] == ["Say hi.", "Yo."]
    with pytest.raises(PreferenceDataError, match=r"row 2, field 'chosen'.*got float"):
        load_preference_data(pd.DataFrame([GOOD, {"prompt": "Yo.", "rejected": " b"}]))  # a missing cell is NaN
