"""Mixture-of-experts models: the router load-balancing loss is added as TRL 1.16 adds it (issue 23, row 6), with
TRL's DPOTrainer as the oracle on the same batch (tidpo's dpo baseline: DPO's loss)."""

from __future__ import annotations

import pytest
import torch
import trl

from tests.training.helpers import config, sentiment_pairs
from tests.trl_compat.families import MOE, llama_model
from tidpo import TIDPOTrainer
from tidpo.training.routes import RouteError
from tidpo.training.trl_compat import from_dpo_config


def _dpo_config(tmp_path, **kwargs):
    base = {
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "report_to": "none",
        "bf16": False,
        "gradient_checkpointing": False,
        "beta": 0.1,
        "max_length": 64,
    }
    return trl.DPOConfig(**{**base, **kwargs})


def _pair(tokenizer, tmp_path, build, **kwargs):
    args = _dpo_config(tmp_path, **kwargs)
    data = sentiment_pairs(3)
    common = {"train_dataset": data, "processing_class": tokenizer}
    ours = TIDPOTrainer(
        model=build(tokenizer, seed=1),
        ref_model=build(tokenizer, seed=0),
        args=from_dpo_config(args, baseline="dpo"),
        **common,
    )
    theirs = trl.DPOTrainer(model=build(tokenizer, seed=1), ref_model=build(tokenizer, seed=0), args=args, **common)
    return ours, theirs


def _loss_and_grads(trainer):
    trainer.model.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", sorted(MOE))
@pytest.mark.parametrize("coef", [None, 0.3])
def test_moe_loss_and_gradients_equal_trls(tokenizer, tmp_path, family, coef):
    ours, theirs = _pair(tokenizer, tmp_path, MOE[family], router_aux_loss_coef=coef)
    assert ours.aux_loss_enabled and theirs.aux_loss_enabled
    assert ours.router_aux_loss_coef == theirs.router_aux_loss_coef == (0.05 if coef is None else coef)
    our_loss, our_grads = _loss_and_grads(ours)
    trl_loss, trl_grads = _loss_and_grads(theirs)
    torch.testing.assert_close(our_loss, trl_loss, atol=1e-5, rtol=0)
    assert our_grads.keys() == trl_grads.keys()
    for name in trl_grads:  # the routers' gradients come from the aux loss only: they check it flows
        torch.testing.assert_close(our_grads[name], trl_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    aux = ours._metrics.pop("train")["aux_loss"]
    assert aux == pytest.approx(theirs._metrics["train"]["aux_loss"][0], abs=1e-6) and aux > 0


@pytest.mark.parametrize("family", sorted(MOE))
def test_coefficient_zero_turns_it_off(tokenizer, tmp_path, family):
    ours, theirs = _pair(tokenizer, tmp_path, MOE[family], router_aux_loss_coef=0.0)
    assert not ours.aux_loss_enabled and not theirs.aux_loss_enabled
    torch.testing.assert_close(_loss_and_grads(ours)[0], _loss_and_grads(theirs)[0], atol=1e-5, rtol=0)


def test_coefficient_for_a_dense_model_is_refused(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="router_aux_loss_coef=0.1 but LlamaForCausalLM is not a mixture-of-experts"):
        TIDPOTrainer(
            model=llama_model(tokenizer),
            args=config(tmp_path, router_aux_loss_coef=0.1),
            train_dataset=sentiment_pairs(2),
            processing_class=tokenizer,
        )
    dense = TIDPOTrainer(
        model=llama_model(tokenizer),
        args=config(tmp_path),
        train_dataset=sentiment_pairs(2),
        processing_class=tokenizer,
    )
    assert dense.aux_loss_enabled is False


def test_packed_rows_are_refused_where_attention_cannot_keep_them_apart(tokenizer, tmp_path):
    """GPT-OSS runs eager attention with sinks: packed sequences would attend to each other, so padding_free is
    refused in one line naming the measured difference (not run wrong)."""
    with pytest.raises(RouteError, match=r"padding_free: the policy cannot run packed rows: .*attend to each other"):
        TIDPOTrainer(
            model=MOE["gpt_oss"](tokenizer, seed=1), ref_model=MOE["gpt_oss"](tokenizer, seed=0),
            args=config(tmp_path, triplet_weight=0.0, padding_free=True), train_dataset=sentiment_pairs(3),
            processing_class=tokenizer,
        )  # fmt: skip


@pytest.mark.parametrize("family", sorted(set(MOE) - {"gpt_oss"}))
def test_ti_dpo_on_moe_routes_and_packed_rows_equal_whole_rows(tokenizer, tmp_path, family):
    """TI-DPO (hybrid weights, TDPO KL, no triplet) on a MoE model: the shared prompt falls back to whole rows (the
    aux loss counts every row's tokens), and packed rows give the same loss and aux loss as whole rows."""

    def build(**overrides):
        return TIDPOTrainer(
            model=MOE[family](tokenizer, seed=1),
            ref_model=MOE[family](tokenizer, seed=0),
            args=config(tmp_path, triplet_weight=0.0, **overrides),
            train_dataset=sentiment_pairs(3),
            processing_class=tokenizer,
        )

    whole = build()
    assert whole.routes.layout == "whole rows"
    with pytest.raises(RouteError, match="share_prompt=True cannot be served: the router's load-balancing loss"):
        build(share_prompt=True)  # asked for: the probe that makes the CPU default fall back refuses it
    packed = build(padding_free=True)
    assert packed.routes.layout == "packed rows"
    (loss_w, grads_w), (loss_p, grads_p) = _loss_and_grads(whole), _loss_and_grads(packed)
    torch.testing.assert_close(loss_w, loss_p, atol=1e-5, rtol=0)
    assert whole._metrics.pop("train")["aux_loss"] == pytest.approx(packed._metrics.pop("train")["aux_loss"], abs=1e-6)
    for name in grads_w:
        torch.testing.assert_close(grads_w[name], grads_p[name], atol=1e-5, rtol=1e-4, msg=name)
