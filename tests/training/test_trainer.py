"""TIDPOTrainer behaviour: fused attribution = separate pass (also with gradient checkpointing), the reference
choices, custom estimators, evaluation metrics, and loud failures."""

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer


def _trainer(tokenizer, tmp_path, ref=True, **overrides):
    fn = overrides.pop("importance_fn", None)
    args = config(
        tmp_path, per_device_train_batch_size=4, triplet_weight=0.0, optim="sgd", learning_rate=0.5, **overrides
    )
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0) if ref else None,
        args=args,
        train_dataset=sentiment_pairs(4),
        eval_dataset=sentiment_pairs(4),
        processing_class=tokenizer,
        importance_fn=fn,
    )


@pytest.mark.parametrize("checkpointing", [False, True])
def test_fused_attribution_step_equals_separate(tokenizer, tmp_path, checkpointing):
    params = {}
    for mode in ("fused", "separate"):
        trainer = _trainer(tokenizer, tmp_path, attribution=mode, gradient_checkpointing=checkpointing)
        trainer.train()
        params[mode] = param_snapshot(trainer.model)
        assert trainer.state.log_history[0]["weights/max"] > 1.0  # hybrid weights really came from attribution
    for name, value in params["fused"].items():
        torch.testing.assert_close(params["separate"][name], value, atol=1e-6, rtol=0, msg=name)


def test_default_reference_is_a_frozen_copy_that_stays_put(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, ref=False)
    ref_before = param_snapshot(trainer.ref_model)
    policy_before = param_snapshot(trainer.model)
    trainer.train()
    assert all(torch.equal(ref_before[n], p) for n, p in param_snapshot(trainer.ref_model).items())
    assert not all(torch.equal(policy_before[n], p) for n, p in param_snapshot(trainer.model).items())
    assert all(torch.equal(ref_before[n], policy_before[n]) for n in ref_before)  # π_ref = initial π_θ


def test_custom_estimator_gets_the_batch_and_shapes_the_weights(tokenizer, tmp_path):
    seen = []

    def last_token_heavy(input_ids, attention_mask, completion_mask):
        seen.append(input_ids.shape)
        return completion_mask.float().cumsum(-1) * completion_mask  # rises along the response

    trainer = _trainer(tokenizer, tmp_path, importance="custom", importance_mix=1.0, importance_fn=last_token_heavy)
    trainer.train()
    assert seen and seen[0][0] == 8  # 4 chosen + 4 rejected rows in one call
    assert trainer.state.log_history[0]["weights/max"] > 1.5


def test_custom_importance_needs_a_function(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="importance='custom' and importance_fn go together"):
        _trainer(tokenizer, tmp_path, importance="custom")


def test_evaluate_reports_eval_prefixed_trl_metrics(tokenizer, tmp_path):
    metrics = _trainer(tokenizer, tmp_path).evaluate()
    for key in ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen", "eval_kl/chosen"):
        assert key in metrics and torch.isfinite(torch.tensor(metrics[key])), key


def test_non_finite_loss_raises_instead_of_training_on(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path)
    with torch.no_grad():
        trainer.model.lm_head.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite|NaN"):
        trainer.train()


def test_metric_buffer_averages_over_pairs_not_batches():
    from tidpo.training.metrics import MetricBuffer

    buffer = MetricBuffer()
    buffer.add("eval", "rewards/accuracies", torch.tensor([1.0, 1.0, 1.0, 0.0]))  # a batch of 4: 3 right
    buffer.add("eval", "rewards/accuracies", torch.tensor([0.0]))  # a last batch of 1: wrong
    assert buffer.pop("eval") == {"rewards/accuracies": 3 / 5}  # not (0.75 + 0) / 2
    assert buffer.pop("eval") == {}


@pytest.mark.parametrize("eval_importance", [False, True])
def test_eval_importance_evaluates_the_training_objective(tokenizer, tmp_path, eval_importance):
    """With eval_importance the held-out loss is the training objective (hybrid weights from attribution): on the
    training pairs, before any update, it equals the first step's logged loss. Without it, evaluation uses uniform
    weights (every weight 1) and gives another loss."""
    trainer = _trainer(tokenizer, tmp_path, eval_importance=eval_importance)
    metrics = trainer.evaluate()
    trainer.train()
    first = trainer.state.log_history[-2]  # the step's log (the last entry is the run summary)
    assert first["weights/max"] > 1.0
    if eval_importance:
        assert metrics["eval_loss"] == pytest.approx(first["loss"], abs=1e-5)
        assert metrics["eval_weights/max"] == pytest.approx(first["weights/max"], abs=1e-5)
        assert "eval_time/attribution" in metrics
    else:
        assert abs(metrics["eval_loss"] - first["loss"]) > 1e-4
        assert metrics["eval_weights/max"] == 1.0 and "eval_time/attribution" not in metrics
