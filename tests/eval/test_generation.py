"""Generation metrics (``tidpo.eval.generation``): sampling, scoring, KL, the reference cache, reward functions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.tiny import make_model
from tidpo.eval.generation import (
    SamplingSettings,
    completion_scores,
    generate_samples,
    generation_report,
    load_reward_fn,
    score_rewards,
)
from tidpo.eval.metrics import distinct_n

PROMPTS = ["the movie was", "I loved this film and", "it"]  # different lengths: left padding at generation
SETTINGS = SamplingSettings(max_new_tokens=6, batch_size=4)


def word_count_reward(prompts, completions, **_):
    """A known reward: the number of words of the completion."""
    return [float(len(c.split())) for c in completions]


def good_reward(prompts, completions, **_):
    return [float(c.split().count("good")) for c in completions]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDPO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def manual_scores(model, tokenizer, prompt: str, ids: list[int]) -> tuple[float, float]:
    """Σ log p and mean entropy of one completion, one unpadded forward."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    full = torch.tensor([prompt_ids + ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=full).logits[0].float(), -1)
    steps = range(len(prompt_ids) - 1, len(prompt_ids) + len(ids) - 1)
    logp = sum(float(logprobs[t, full[0, t + 1]]) for t in steps)
    entropy = sum(float(-(logprobs[t].exp() * logprobs[t]).sum()) for t in steps) / len(ids)
    return logp, entropy


def test_samples_stop_at_the_first_eos_and_are_reproducible(tiny):
    model, tokenizer = tiny
    first = generate_samples(model, tokenizer, PROMPTS, 3, SETTINGS, seed=5)
    again = generate_samples(model, tokenizer, PROMPTS, 3, SETTINGS, seed=5)
    other = generate_samples(model, tokenizer, PROMPTS, 3, SETTINGS, seed=6)
    assert [s.token_ids for s in first] == [s.token_ids for s in again]
    assert [s.token_ids for s in first] != [s.token_ids for s in other]
    assert [s.prompt_index for s in first] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    eos = tokenizer.eos_token_id
    for s in first:
        assert 1 <= len(s.token_ids) <= SETTINGS.max_new_tokens
        assert eos not in s.token_ids[:-1]


def test_batched_scores_equal_one_unpadded_forward_per_sample(tiny):
    """Right-padded batches give each completion the log-prob and entropy of its own unpadded forward."""
    model, tokenizer = tiny
    samples = generate_samples(model, tokenizer, PROMPTS, 2, SETTINGS, seed=0)
    logps, entropies = completion_scores(model, tokenizer, samples, batch_size=4)
    for s, lp, h in zip(samples, logps, entropies, strict=True):
        ref_lp, ref_h = manual_scores(model, tokenizer, s.prompt, s.token_ids)
        assert lp == pytest.approx(ref_lp, abs=1e-4)
        assert h == pytest.approx(ref_h, abs=1e-4)
    # the tiny model is near uniform: entropy close to log V, and a sample's log-prob near -len · log V
    assert 0.9 * math.log(len(tokenizer)) < entropies[0] <= math.log(len(tokenizer)) + 1e-6


def test_scores_match_the_logits_generate_sampled_from(tiny):
    """The teacher-forced log-probs are those of the distribution generation sampled from (left padding, the
    positions from the attention mask): checked against generate's own logits."""
    model, tokenizer = tiny
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, do_sample=True, max_new_tokens=5, top_k=0, output_logits=True,
                         return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    tokenizer.padding_side = "right"
    new = out.sequences[:, batch["input_ids"].shape[1] :]
    for row, prompt in enumerate(PROMPTS):
        ids = new[row].tolist()
        stop = ids.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in ids else len(ids)
        expected = sum(
            float(torch.log_softmax(out.logits[t][row].float(), -1)[ids[t]]) for t in range(stop)
        )  # fmt: skip
        assert manual_scores(model, tokenizer, prompt, ids[:stop])[0] == pytest.approx(expected, abs=1e-4)


def test_policy_against_itself_has_zero_kl_difference_and_half_wins(tiny):
    model, tokenizer = tiny
    report = generation_report(model, tokenizer, PROMPTS, word_count_reward, n=4, settings=SETTINGS, seed=3,
                               reference=model)  # fmt: skip
    assert report["kl"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert report["reward_difference"]["mean"] == 0.0 and report["win_rate"] == 0.5
    assert report["policy"]["reward"] == report["reference"]["reward"]
    assert [s["policy"] for s in report["samples"]] == [s["reference"] for s in report["samples"]]


def test_report_numbers_follow_from_the_samples(tiny):
    model, tokenizer = tiny
    reference = make_model(tokenizer, seed=1)
    report = generation_report(model, tokenizer, PROMPTS, word_count_reward, n=4, settings=SETTINGS, seed=0,
                               reference=reference)  # fmt: skip
    rows = report["samples"]
    assert len(rows) == 12 and report["kl_unbiased"]
    policy_rewards = [r["policy_reward"] for r in rows]
    reference_rewards = [r["reference_reward"] for r in rows]
    assert policy_rewards == [float(len(r["policy"].split())) for r in rows]
    assert report["policy"]["reward"]["mean"] == pytest.approx(sum(policy_rewards) / 12)
    diff = sum(p - q for p, q in zip(policy_rewards, reference_rewards, strict=True)) / 12
    assert report["reward_difference"]["mean"] == pytest.approx(diff)
    wins = sum((p > q) + 0.5 * (p == q) for p, q in zip(policy_rewards, reference_rewards, strict=True)) / 12
    assert report["win_rate"] == pytest.approx(wins)
    assert report["policy"]["distinct_2"] == pytest.approx(distinct_n([r["policy"] for r in rows], 2))
    # KL: each policy sample's log-prob under the policy minus under the reference, by hand
    samples = generate_samples(model, tokenizer, PROMPTS, 4, SETTINGS, seed=0)
    kls = [
        manual_scores(model, tokenizer, s.prompt, s.token_ids)[0]
        - manual_scores(reference, tokenizer, s.prompt, s.token_ids)[0]
        for s in samples
    ]
    assert [r["kl"] for r in rows] == pytest.approx(kls, abs=1e-4)
    assert report["kl"]["mean"] == pytest.approx(sum(kls) / 12, abs=1e-4)
    assert report["kl"]["low"] <= report["kl"]["mean"] <= report["kl"]["high"]


def test_reference_samples_are_cached_and_reused(tiny, cache_dir):
    model, tokenizer = tiny
    reference = make_model(tokenizer, seed=1)
    first = generation_report(model, tokenizer, PROMPTS, word_count_reward, 2, SETTINGS, 0, reference=reference)
    files = list((cache_dir / "samples").glob("*.json"))
    assert len(files) == 1 and not first["reference_samples_cached"]
    second = generation_report(model, tokenizer, PROMPTS, good_reward, 2, SETTINGS, 0, reference=reference)
    assert second["reference_samples_cached"]
    assert [r["reference"] for r in second["samples"]] == [r["reference"] for r in first["samples"]]
    # the rewards are recomputed from the cached texts with the new reward function
    assert [r["reference_reward"] for r in second["samples"]] == good_reward(None, [r["reference"] for r in
                                                                              second["samples"]])  # fmt: skip
    # another seed or another reference is another cache entry
    generation_report(model, tokenizer, PROMPTS, word_count_reward, 2, SETTINGS, 1, reference=reference)
    assert len(list((cache_dir / "samples").glob("*.json"))) == 2


def test_a_damaged_or_unwritable_sample_cache_costs_only_a_new_sampling(tiny, cache_dir, monkeypatch, caplog):
    model, tokenizer = tiny
    reference = make_model(tokenizer, seed=1)
    first = generation_report(model, tokenizer, PROMPTS, word_count_reward, 2, SETTINGS, 0, reference=reference)
    (path,) = (cache_dir / "samples").glob("*.json")
    path.write_text(path.read_text()[:40])  # cut short
    again = generation_report(model, tokenizer, PROMPTS, word_count_reward, 2, SETTINGS, 0, reference=reference)
    assert not again["reference_samples_cached"] and again["samples"] == first["samples"]
    monkeypatch.setenv("TIDPO_CACHE", str(path))  # a cache "folder" that is a file cannot be written
    third = generation_report(model, tokenizer, PROMPTS, word_count_reward, 2, SETTINGS, 0, reference=reference)
    assert third["samples"] == first["samples"] and "could not cache the reference's samples" in caplog.text


def test_reward_functions_are_named_module_colon_function_and_checked():
    assert load_reward_fn("tidpo.tasks.sentiment:reward")(prompts=["x"], completions=["a great film"])[0] > 0.5
    for spec, message in [("tidpo.tasks.sentiment", "module:function"), ("no_such_module_x:f", "cannot import"),
                          ("tidpo.tasks.sentiment:nothing", "no callable")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            load_reward_fn(spec)
    with pytest.raises(ValueError, match="2 values for 3"):
        score_rewards(lambda prompts, completions: [1.0, 2.0], ["p"] * 3, ["a", "b", "c"])
    with pytest.raises(ValueError, match="completion 1"):
        score_rewards(lambda prompts, completions: [1.0, math.nan], ["p"] * 2, ["a", "b"])
    for bad in ("0.5", True, None, [1.0]):
        with pytest.raises(ValueError, match="completion 1.*not a finite number"):
            score_rewards(lambda prompts, completions, bad=bad: [1.0, bad], ["p"] * 2, ["a", "b"])
    with pytest.raises(ValueError, match="returned float, not a list"):
        score_rewards(lambda prompts, completions: 1.0, ["p"], ["a"])
    scores = [np.float32(0.25), torch.tensor(-1.5), 2, np.float64(0.5)]  # a reward model's numbers are accepted
    assert score_rewards(lambda prompts, completions: scores, ["p"] * 4, list("abcd")) == [0.25, -1.5, 2.0, 0.5]


def test_a_reward_that_cannot_take_prompts_and_completions_is_refused_when_named(tmp_path, monkeypatch):
    (tmp_path / "user_rewards.py").write_text(
        "def positional(texts):\n    return [0.0] * len(texts)\n"
        "def needs_model(prompts, completions, model):\n    return [0.0]\n"
        "def keyword_only(*, completions, **kwargs):\n    return [0.0] * len(completions)\n"
        "def trl_style(prompts, completions, **kwargs):\n    return [0.0] * len(completions)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"parameters \(texts\) do not take prompts= and completions="):
        load_reward_fn("user_rewards:positional")
    with pytest.raises(ValueError, match="also require model"):
        load_reward_fn("user_rewards:needs_model")
    for name in ("keyword_only", "trl_style"):
        assert score_rewards(load_reward_fn(f"user_rewards:{name}"), ["p"], ["a"]) == [0.0]


def test_sampling_settings_are_checked():
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingSettings(temperature=0.0)
    assert SamplingSettings().exact and not SamplingSettings(top_p=0.9).exact


def test_cli_eval_prompts_writes_the_generation_report(tiny_model_dir, tmp_path, capsys):
    from tidpo.cli.main import main as tidpo

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the movie was\n\nI loved this film and\n")
    out = tmp_path / "eval.json"
    code = tidpo(["eval", "--model", str(tiny_model_dir), "--ref", str(tiny_model_dir), "--prompts", str(prompts),
                  "--reward", f"{__name__}:word_count_reward", "--samples", "2", "--max_new_tokens", "4",
                  "--use_cpu", "--output", str(out)])  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    gen = results["generation"]
    assert gen["prompts"] == 2 and len(gen["samples"]) == 4 and gen["kl"]["mean"] == pytest.approx(0, abs=1e-6)
    assert "win rate over the reference's samples: 0.500" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "needs --reward"),
        (["--reward", "nomodule"], "module:function"),
        (["--reward", "tidpo.tasks.sentiment:reward", "--samples", "0"], "--samples"),
    ],
)
def test_cli_eval_prompts_mistakes_are_one_line(tiny_model_dir, tmp_path, capsys, extra, message):
    from tidpo.cli.main import main as tidpo

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the movie was\n")
    code = tidpo(["eval", "--model", str(tiny_model_dir), "--ref", str(tiny_model_dir), "--prompts", str(prompts),
                  "--use_cpu", *extra])  # fmt: skip
    assert code == 2 and message in capsys.readouterr().err


def test_cli_eval_needs_pairs_or_prompts(tiny_model_dir, capsys):
    from tidpo.cli.main import main as tidpo

    assert tidpo(["eval", "--model", str(tiny_model_dir), "--ref", str(tiny_model_dir)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny):
    model, tokenizer = tiny
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
