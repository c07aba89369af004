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
    pairs = preference_pairs("The film", completions, min_gap=0.1)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        (" I loved it, wonderful!", " I hated it, awful."),
        (" it was fine.", " it was bad."),
    ]
    assert all(p["chosen_reward"] - p["rejected_reward"] >= 0.1 for p in pairs)


def test_pairs_below_the_gap_are_dropped():
    assert preference_pairs("The film", [" it is a film.", " it was a film."], min_gap=0.1) == []


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
    assert len(data) >= 30 and path.stat().st_size < 1_000_000
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in rows)
    assert all((r["prompt"] in held_out) == (split == "test") for r in rows)
