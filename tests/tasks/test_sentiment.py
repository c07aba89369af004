"""The built-in sentiment task: the reward, the pair construction, and the shipped ``demo`` dataset."""

import json

import pytest

from tidpo.resources import builtin_dataset_path
from tidpo.tasks.sentiment import HELD_OUT, load_openings, preference_pairs, sentiment_scores


def test_vader_reward_orders_obvious_sentences():
    good, neutral, bad = sentiment_scores(["a wonderful, moving film I loved", "it is a film", "an awful, boring mess"])
    assert good > 0.5 and bad < -0.5 and neutral == pytest.approx(0.0)


def test_pairs_are_best_vs_worst_then_runners_up():
    completions = [" it was fine.", " I loved it, wonderful!", " I hated it, awful.", " it was bad."]
    assert len(preference_pairs("The film", completions, min_gap=0.1)) == 1  # best vs worst by default
    pairs = preference_pairs("The film", completions, min_gap=0.1, pairs=2)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        (" I loved it, wonderful!", " I hated it, awful."),
        (" it was fine.", " it was bad."),
    ]
    assert all(p["chosen_reward"] - p["rejected_reward"] >= 0.1 for p in pairs)


def test_pairs_below_the_gap_are_dropped_and_empty_continuations_never_paired():
    assert preference_pairs("The film", [" it is a film.", " it was a film."], min_gap=0.1) == []
    pairs = preference_pairs("The film", [" I loved it!", "  ", " I hated it."], min_gap=0.1)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(" I loved it!", " I hated it.")]


def test_the_reward_function_scores_completions_alone():
    from tidpo.tasks.sentiment import reward

    scores = reward(prompts=["I hated everything, but"] * 2, completions=[" it was wonderful", " it is a film"])
    assert scores[0] > 0.5 and scores[1] == pytest.approx(0.0)


def test_lexicon_weight_columns_follow_the_tokenised_response():
    from tests.tiny import make_tokenizer
    from tidpo.data import tokenize_preference_row
    from tidpo.tasks.sentiment import lexicon_weight_columns

    tokenizer = make_tokenizer()
    row = {"prompt": "the movie was", "chosen": " great and I loved it", "rejected": " awful"}
    columns = lexicon_weight_columns(row, tokenizer)
    ids = tokenize_preference_row(row, tokenizer)
    assert len(columns["chosen_weights"]) == len(ids["chosen_ids"]) - 1  # the rule: no entry for the final EOS
    assert columns["chosen_weights"] == [1.0, 0.0, 0.0, 1.0, 0.0]  # great, and, I, loved, it
    assert columns["rejected_weights"] == [1.0]


def test_held_out_openings_are_disjoint_from_training_openings():
    train, held_out = load_openings()
    assert len(held_out) == HELD_OUT and len(train) > 3 * HELD_OUT
    assert not set(train) & set(held_out)


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_demo_dataset_is_valid_and_preferences_follow_the_reward(split):
    from tidpo import load_preference_data

    path = builtin_dataset_path("demo", split)
    data = load_preference_data(path)
    _, held_out = load_openings()
    assert len(data) >= (300 if split == "train" else 40) and path.stat().st_size < 1_000_000
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["chosen_reward"] - r["rejected_reward"] >= 0.5 for r in rows)  # the shipped set's min_gap
    assert all((r["prompt"] in held_out) == (split == "test") for r in rows)
