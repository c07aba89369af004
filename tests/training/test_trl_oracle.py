"""An identity of docs/method.md: with uniform weights, kl_mode=none and γ = 0, TI-DPO is DPO, checked against
TRL 1.16's DPOTrainer on the same tiny model (policy ≠ reference, so the log-ratios are not zero) and the same
collated batch."""

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, sentiment_pairs
from tidpo import TIDPOTrainer

trl = pytest.importorskip("trl")

METRICS = ["rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"]


def _trainers(tokenizer, tmp_path):
    data = sentiment_pairs(3)
    ours = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, baseline="dpo", beta=0.1),
        train_dataset=data,
        processing_class=tokenizer,
    )
    trl_args = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=0.1,
        max_length=64,
        report_to="none",
        use_cpu=True,
        gradient_checkpointing=False,
        bf16=False,  # TRL defaults to bf16 autocast; compare in fp32
    )
    theirs = trl.DPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=trl_args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    return ours, theirs


def _loss_and_metrics(trainer, batch):
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    if isinstance(trainer, TIDPOTrainer):
        return loss, trainer._metrics.pop("train")
    metrics = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    return loss, metrics


def test_dpo_limit_equals_trl(tokenizer, tmp_path):
    ours, theirs = _trainers(tokenizer, tmp_path)
    examples = [theirs.train_dataset[i] for i in range(3)]
    assert [ours.train_dataset[i]["chosen_ids"] for i in range(3)] == [e["chosen_ids"] for e in examples]
    batch = theirs.data_collator(examples)
    our_loss, our_metrics = _loss_and_metrics(ours, ours.data_collator([ours.train_dataset[i] for i in range(3)]))
    trl_loss, trl_metrics = _loss_and_metrics(theirs, batch)
    torch.testing.assert_close(our_loss, trl_loss, atol=1e-5, rtol=0)
    assert abs(our_loss.item() - 0.6931) > 1e-3  # policy ≠ reference: a non-trivial batch
    for name in METRICS:
        assert our_metrics[name] == pytest.approx(trl_metrics[name], abs=1e-5), name


def test_per_token_logps_equal_trl(tokenizer, tmp_path):
    from tidpo.ops import per_token_logps

    ours, theirs = _trainers(tokenizer, tmp_path)
    batch = theirs.data_collator([theirs.train_dataset[i] for i in range(3)])
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        trl_logps = theirs.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, fused_lm_head=True
        ).log_probs
        ours_logps = per_token_logps(ours.model(input_ids=batch["input_ids"]).logits, batch["input_ids"])
    mask = batch["completion_mask"][:, 1:].bool()
    torch.testing.assert_close(ours_logps[:, 1:][mask], trl_logps[:, -mask.shape[1] :][mask], atol=1e-5, rtol=0)
