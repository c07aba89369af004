"""LogCompletionsCallback: at each evaluation, one sampled completion per prompt, written as JSON lines; the
samples are the policy's own (the same seed reproduces them from the trained model) and training's RNG is left
alone (a run with the callback takes the same steps as one without)."""

from __future__ import annotations

import json

import torch

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import LogCompletionsCallback, TIDPOTrainer
from tidpo.eval.generation import SamplingSettings, generate_samples


def _run(tokenizer, tmp_path, callback=None):
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1, anchor_max_new_tokens=4),
        train_dataset=sentiment_pairs(4),
        eval_dataset=sentiment_pairs(3),
        processing_class=tokenizer,
        callbacks=None if callback is None else [callback],
    )
    trainer.train()
    return trainer


def test_completions_are_logged_at_each_evaluation(tokenizer, tmp_path):
    prompts = sentiment_pairs(3)
    callback = LogCompletionsCallback(prompts, num_prompts=2, max_new_tokens=5, seed=7)
    trainer = _run(tokenizer, tmp_path / "with", callback)
    rows = [json.loads(line) for line in (tmp_path / "with" / "out" / "completions.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 1, 2, 2]
    assert [row["prompt"] for row in rows[:2]] == prompts["prompt"][:2]
    again = generate_samples(trainer.model, tokenizer, prompts["prompt"][:2], 1, SamplingSettings(max_new_tokens=5),
                             seed=7)  # fmt: skip
    assert [row["completion"] for row in rows[2:]] == [s.text for s in again]  # the final model's own samples
    plain = _run(tokenizer, tmp_path / "without")
    for name, value in param_snapshot(plain.model).items():
        torch.testing.assert_close(param_snapshot(trainer.model)[name], value, atol=0, rtol=0, msg=name)


def test_conversational_prompts_use_the_chat_template(tokenizer):
    from datasets import Dataset

    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "hello"}], "chosen": [], "rejected": []}])
    text = LogCompletionsCallback(rows).prompt_texts(tokenizer)[0]
    assert text == tokenizer.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|> assistant \n")
