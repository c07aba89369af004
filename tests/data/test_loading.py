"""load_preference_data: every supported source loads, in both formats, with explicit and implicit prompts."""

from __future__ import annotations

import csv
import json

import pytest
from datasets import Dataset, DatasetDict

from tests.data.rows import CHAT, STANDARD, implicit, write_jsonl
from tidpo.data import PreferenceDataError, load_preference_data


@pytest.mark.parametrize("rows", [STANDARD, CHAT, implicit(STANDARD), implicit(CHAT)])
def test_jsonl_loads_every_format(tmp_path, rows):
    dataset = load_preference_data(write_jsonl(tmp_path / "data.jsonl", rows))
    assert dataset.to_list() == rows


def test_json_array_loads(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(CHAT, indent=2))
    assert load_preference_data(path).to_list() == CHAT


def test_json_file_with_json_lines_content_loads(tmp_path):
    dataset = load_preference_data(write_jsonl(tmp_path / "data.json", STANDARD))
    assert dataset.to_list() == STANDARD


def test_csv_loads_every_cell_as_text(tmp_path):
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["prompt", "chosen", "rejected"])
        writer.writeheader()
        writer.writerows([*STANDARD, {"prompt": "1", "chosen": "2", "rejected": "3"}])
    assert load_preference_data(path).to_list() == [*STANDARD, {"prompt": "1", "chosen": "2", "rejected": "3"}]


def test_parquet_loads(tmp_path):
    Dataset.from_list(CHAT).to_parquet(tmp_path / "data.parquet")
    assert load_preference_data(tmp_path / "data.parquet").to_list() == CHAT


def test_saved_dataset_folder_loads(tmp_path):
    Dataset.from_list(STANDARD).save_to_disk(tmp_path / "saved")
    assert load_preference_data(str(tmp_path / "saved")).to_list() == STANDARD


def test_saved_dataset_dict_folder_picks_split(tmp_path):
    DatasetDict({"train": Dataset.from_list(STANDARD), "test": Dataset.from_list(STANDARD[:1])}).save_to_disk(
        tmp_path / "saved"
    )
    assert load_preference_data(tmp_path / "saved", split="test").to_list() == STANDARD[:1]


def test_missing_split_lists_available_splits(tmp_path):
    DatasetDict({"train": Dataset.from_list(STANDARD), "test": Dataset.from_list(STANDARD)}).save_to_disk(
        tmp_path / "saved"
    )
    with pytest.raises(PreferenceDataError, match=r"no split 'eval'; the available splits are 'train', 'test'"):
        load_preference_data(tmp_path / "saved", split="eval")


def test_dataset_object_is_returned_checked():
    dataset = Dataset.from_list(implicit(CHAT))
    assert load_preference_data(dataset).to_list() == implicit(CHAT)


def test_dataset_dict_object_picks_split():
    datasets = DatasetDict({"train": Dataset.from_list(STANDARD), "test": Dataset.from_list(CHAT)})
    assert load_preference_data(datasets, split="test").to_list() == CHAT


def test_extra_columns_are_kept(tmp_path):
    rows = [{**row, "source": "hh", "score": 0.5} for row in STANDARD]
    assert load_preference_data(write_jsonl(tmp_path / "data.jsonl", rows)).to_list() == rows


def test_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_preference_data(tmp_path / "nope.jsonl")


def test_unknown_extension_raises(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(PreferenceDataError, match=r"data.txt: unsupported file type '.txt'"):
        load_preference_data(tmp_path / "data.txt")


def test_folder_that_is_not_a_saved_dataset_raises(tmp_path):
    with pytest.raises(PreferenceDataError, match="neither dataset_dict.json nor state.json"):
        load_preference_data(tmp_path)


def test_unsupported_source_type_raises():
    with pytest.raises(TypeError, match="a list of row dicts or a pandas DataFrame, got set"):
        load_preference_data({"pairs.jsonl"})


def test_a_folder_laid_out_like_a_hub_dataset_repository(tmp_path):
    """data/train.jsonl + data/test.jsonl, as a cloned Hub dataset has them: the splits are named by the files."""
    (tmp_path / "repo" / "data").mkdir(parents=True)
    write_jsonl(tmp_path / "repo" / "data" / "train.jsonl", STANDARD)
    write_jsonl(tmp_path / "repo" / "data" / "test.jsonl", STANDARD[:1])
    (tmp_path / "repo" / "README.md").write_text("# pairs\n")
    assert len(load_preference_data(tmp_path / "repo")) == len(STANDARD)
    assert load_preference_data(tmp_path / "repo", split="test")["prompt"] == [STANDARD[0]["prompt"]]
    with pytest.raises(PreferenceDataError, match=r"no split 'validation'; the available splits are 'train', 'test'"):
        load_preference_data(tmp_path / "repo", split="validation")
    (tmp_path / "broken" / "data").mkdir(parents=True)
    (tmp_path / "broken" / "data" / "train.jsonl").write_text('{"prompt": 1\n')
    with pytest.raises(PreferenceDataError, match=r"broken: a folder of data files that datasets.load_dataset cannot"):
        load_preference_data(tmp_path / "broken")


def test_a_model_folder_is_not_taken_for_data(tmp_path):
    from tests.tiny import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    make_model(tokenizer).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")  # config.json, tokenizer.json: JSON files, but no data
    with pytest.raises(PreferenceDataError, match=r"model: a model folder .* not preference data"):
        load_preference_data(tmp_path / "model")
