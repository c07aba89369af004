"""The study file: the example loads; each mistake is refused in one line that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidpo.compare.spec import DEMO_REWARD, SpecError, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compare-sentiment.yaml"
GOOD = {
    "model": "smollm2-135m-instruct",
    "train": "demo",
    "prompts": "demo",
    "reward": "vader",
    "methods": {"dpo": {"baseline": "dpo"}, "ti": {"preset": "paper", "label": "TI-DPO"}},
    "seeds": [0, 1],
    "checkpoints": [2, 4],
    "budgets": [1, 2.5],
    "baseline": "dpo",
}


def test_the_sentiment_study_loads_and_validates():
    spec = load_spec(EXAMPLE)
    names = "dpo tdpo2 ti-dpo-paper ti-dpo-official response-logp gamma-0".split()
    assert [m.name for m in spec.methods] == names
    assert spec.checkpoints == [8, 16, 24, 32] and spec.budgets == [2.0, 4.0] and spec.baseline == "tdpo2"
    assert spec.reward == DEMO_REWARD and spec.seeds == [0, 1, 2]
    settings = spec.training_settings(spec.method("gamma-0"), 1, "out")
    assert settings["triplet_weight"] == 0.0 and settings["max_steps"] == 32 and settings["seed"] == 1
    assert "use_lora" not in settings and spec.lora(spec.method("dpo"))["lora_r"] == 16


def test_a_good_mapping_parses_with_defaults():
    spec = parse_spec(GOOD)
    assert spec.samples == 4 and spec.sample_seed == 1234 and spec.bootstrap == 2000
    assert spec.method("ti").label == "TI-DPO" and "label" not in spec.method("ti").overrides
    assert spec.sampling().max_new_tokens == 32


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"seed": [0]}, ["'seed'", "did you mean 'seeds'"]),
        ({"seeds": []}, ["'seeds'", "non-empty list"]),
        ({"seeds": [0, 0]}, ["'seeds'", "distinct"]),
        ({"checkpoints": [4, 2]}, ["'checkpoints'", "increasing"]),
        ({"checkpoints": [0, 2]}, ["'checkpoints'", ">= 1"]),
        ({"budgets": [0]}, ["'budgets'", "positive"]),
        ({"budgets": "2"}, ["'budgets'", "e.g. [2, 4]"]),
        ({"baseline": "tdpo2"}, ["'baseline'", "not a method", "dpo, ti"]),
        ({"reward": "nomodule"}, ["'reward'", "module:function"]),
        ({"prompts": "missing.txt"}, ["'prompts'", "'demo' or a"]),
        ({"samples": 0}, ["'samples'", ">= 1"]),
        ({"top_p": 2}, ["'top_p'", "(0, 1]"]),
        ({"methods": {"a b": {}}}, ["'methods'", "method names"]),
        ({"methods": {"x": {"betaa": 0.1}}}, ["methods.x.betaa", "did you mean 'beta'"]),
        ({"recipe": {"seed": 3}}, ["recipe.seed", "set by compare", "remove it"]),
        ({"methods": {"x": {"max_steps": 3}}}, ["methods.x.max_steps", "checkpoints"]),
        ({"methods": {"x": {"baseline": "dpo", "triplet_weight": 0.5}}}, ["methods.x", "triplet_weight"]),
        ({"methods": {"x": {"preset": "nope"}}}, ["methods.x", "preset"]),
    ],
)
def test_a_mistake_is_one_line_naming_the_key(change, words):
    data = {**GOOD, **change}
    if "methods" in change and "baseline" not in change:
        data["baseline"] = None
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="study.yaml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("study.yaml: ")
    for word in words:
        assert word in message


def test_a_missing_key_and_a_file_that_is_not_a_mapping(tmp_path):
    data = {k: v for k, v in GOOD.items() if k != "budgets"}
    with pytest.raises(SpecError, match="key 'budgets' is missing"):
        parse_spec(data)
    path = tmp_path / "study.yaml"
    path.write_text("- a list\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(path)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")


def test_relative_paths_are_taken_from_the_spec_folder(tmp_path):
    (tmp_path / "prompts.txt").write_text("one\ntwo\n")
    path = tmp_path / "study.yaml"
    path.write_text("\n".join(f"{k}: {v!r}" for k, v in {**GOOD, "prompts": "prompts.txt"}.items()).replace("'", '"'))
    spec = load_spec(path)
    assert spec.prompts == str(tmp_path / "prompts.txt") and spec.train == "demo"
