"""Non-finite numbers never reach the weights: caught before the optimiser step, raised with the step, the rows and
the quantity, or (on_nonfinite='skip') the update is dropped, counted and logged, until too many in a row."""

from __future__ import annotations

import math

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import collated_batch, config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer
from tidpo.training.nonfinite import NonFiniteError


def _trainer(tokenizer, tmp_path, steps: int = 2, **overrides) -> TIDPOTrainer:
    args = config(tmp_path, max_steps=steps, learning_rate=1e-2, anchor_max_new_tokens=4, **overrides)
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0), args=args,
        train_dataset=sentiment_pairs(8), processing_class=tokenizer,
    )  # fmt: skip


def _nan_gradients(model, steps: set[int]):
    """NaN gradients of one weight in the backward passes numbered ``steps`` (0-based), finite ones otherwise."""
    weight = model.model.layers[0].mlp.down_proj.weight
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        return grad * math.nan if calls["n"] - 1 in steps else grad

    weight.register_hook(hook)
    return weight


def test_a_nan_loss_raises_with_step_rows_and_quantity_and_changes_nothing(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path)
    with torch.no_grad():
        trainer.model.model.norm.weight[0] = math.nan  # every forward is NaN from here
    before = param_snapshot(trainer.model)
    rows = r" \(pairs at rows \d+, \d+ of the data\)"
    # each quantity named once, the attributions where they were found (before the weighting)
    expected = (
        rf"step 1: attributions{rows}; anchor_logits{rows}; loss, token_weights{rows}; gradient norm \(nan\)\. Nothing"
    )
    with pytest.raises(NonFiniteError, match=expected):
        trainer.train()
    for name, value in param_snapshot(trainer.model).items():
        torch.testing.assert_close(value, before[name], equal_nan=True, msg=name)  # nothing was applied


def test_nan_gradients_raise_by_default(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path)
    _nan_gradients(trainer.model, {0})
    with pytest.raises(NonFiniteError, match=r"update of step 1: gradient norm \(nan\)"):
        trainer.train()


def test_skip_drops_one_update_and_counts_it(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, steps=3, on_nonfinite="skip")
    weight = _nan_gradients(trainer.model, {1})  # the second step's backward
    trainer.train()
    assert trainer._skipped_updates == 1
    assert torch.isfinite(weight).all()
    state = (
        trainer.optimizer.state[weight]
        if weight in trainer.optimizer.state
        else trainer.optimizer.optimizer.state[weight]
    )
    assert int(state["step"]) == 2  # three steps, one update skipped
    logged = [row["skipped_updates"] for row in trainer.state.log_history if "skipped_updates" in row]
    assert logged == [0.0, 1.0, 1.0]


def test_skip_stops_after_too_many_in_a_row(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, steps=4, on_nonfinite="skip", max_nonfinite_skips=1)
    _nan_gradients(trainer.model, {1, 2})
    with pytest.raises(NonFiniteError, match="2 updates in a row"):
        trainer.train()
    assert trainer.state.global_step == 2  # the first step trained, the second skipped, the third stopped it


def test_a_nan_at_evaluation_raises(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path)
    trainer.eval_dataset = trainer.train_dataset
    with torch.no_grad():
        trainer.model.model.norm.weight[0] = math.inf
    with pytest.raises(NonFiniteError, match="at evaluation"):
        trainer.evaluate()


def test_bf16_model_on_cpu_trains_with_fp32_losses(tokenizer, tmp_path):
    """A bf16 tiny model: log-probs, KL and losses come out in fp32 and finite, and a step changes the weights."""
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1).to(torch.bfloat16),
        ref_model=make_model(tokenizer, seed=0).to(torch.bfloat16),
        args=config(tmp_path, max_steps=1, learning_rate=1e-1, anchor_max_new_tokens=4, bf16=True),
        train_dataset=sentiment_pairs(4), processing_class=tokenizer,
    )  # fmt: skip
    batch = collated_batch(tokenizer, 2)
    loss = trainer.compute_loss(trainer.model, batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    before = param_snapshot(trainer.model)
    trainer.train()
    assert any(not torch.equal(v, before[n]) for n, v in param_snapshot(trainer.model).items())
    log = trainer.state.log_history[0]
    assert all(math.isfinite(log[k]) for k in ("loss", "rewards/margins", "kl/chosen"))
