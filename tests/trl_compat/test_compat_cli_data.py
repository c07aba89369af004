"""Command-line and data papercuts a TRL user meets (issue 23, item 4): bare true/false flags, pairs whose two
responses are identical (kept and counted, as TRL trains them), a .json document that is not a list of rows."""

from __future__ import annotations

import json
import logging

import pytest
from datasets import Dataset

from tests.training.helpers import sentiment_pairs
from tidpo.cli.train_options import make_parser
from tidpo.data import PreferenceDataError, load_preference_data, tokenize_preference_dataset
from tidpo.data.streaming import tokenize_streaming


@pytest.mark.parametrize("flag", ["share_prompt", "precompute_ref_log_probs", "chunked_logits", "padding_free"])
def test_bool_flags_work_bare(flag):
    parser = make_parser()
    assert getattr(parser.parse_args([f"--{flag}"]), flag) is True
    assert getattr(parser.parse_args([f"--{flag}", "false"]), flag) is False


def test_auto_flags_stay_auto_when_absent():
    args = make_parser().parse_args([])
    assert args.share_prompt is None and args.chunked_logits is None


def _rows_with_identical(n_identical: int) -> list[dict]:
    rows = sentiment_pairs(5).to_list()
    for row in rows[1 : 1 + n_identical]:
        row["rejected"] = row["chosen"]
    return rows


def _identical_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "identical chosen and rejected" in r.getMessage()]


@pytest.mark.parametrize("on_bad_row", ["error", "skip"])
def test_identical_pairs_are_kept_with_one_warning_that_counts_them(tmp_path, caplog, on_bad_row):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows_with_identical(2)), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tidpo.data"):
        data = load_preference_data(path, on_bad_row=on_bad_row)
    assert data.num_rows == 5
    (message,) = _identical_warnings(caplog)
    assert "2 of 5 pairs" in message and "the first: line 2" in message


def test_identical_pairs_in_a_dataset_and_in_a_stream(tokenizer, caplog):
    rows = _rows_with_identical(3)
    with caplog.at_level(logging.WARNING, logger="tidpo.data"):
        data = tokenize_preference_dataset(load_preference_data(Dataset.from_list(rows)), tokenizer)
        streamed = list(tokenize_streaming(Dataset.from_list(rows).to_iterable_dataset(), tokenizer, 64, "train"))
    assert len(data) == 5 and len(streamed) == 5 and data[1]["chosen_ids"] == data[1]["rejected_ids"]
    assert [s["chosen_ids"] for s in streamed] == data["chosen_ids"]
    warnings = _identical_warnings(caplog)
    assert len(warnings) == 2 and "3 of 5 pairs" in warnings[0]  # the Dataset's count; the stream warns once


def test_json_document_that_is_not_rows_says_so(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"data": sentiment_pairs(2).to_list()}, indent=2), encoding="utf-8")
    with pytest.raises(PreferenceDataError) as info:
        load_preference_data(path)
    message = str(info.value)
    assert "not a list of rows" in message and "'data'" in message and "not valid JSON" not in message
    assert "\n" not in message


def test_pretty_printed_single_row_json(tmp_path):
    path = tmp_path / "pair.json"
    row = sentiment_pairs(1).to_list()[0]
    path.write_text(json.dumps(row, indent=2), encoding="utf-8")
    assert load_preference_data(path).to_list() == [row]
