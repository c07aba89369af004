"""``truncation_mode="keep_end"`` as in TRL 1.16: each row keeps its last ``max_length`` tokens, nothing is dropped,
and in tidpo's DPO limit the loss and gradients are TRL's on the same batch; under TI-DPO it trains on whole rows."""

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import varied_pairs
from tidpo import TIDPOConfig, TIDPOTrainer
from tidpo.training.trl_compat import from_dpo_config

trl = pytest.importorskip("trl")

PAIRS, MAX_LENGTH = 4, 10  # rows of 7 to 21 tokens: most lose their start, one pair's prompt alone is > 10


def _dpo_config(path, **options):
    return trl.DPOConfig(
        output_dir=str(path),
        beta=0.1,
        max_length=MAX_LENGTH,
        truncation_mode="keep_end",
        report_to="none",
        use_cpu=True,
        gradient_checkpointing=False,
        bf16=False,
        **options,
    )


def _loss_and_grads(trainer, batch):
    trainer.model.train()
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_keep_end_equals_trl_in_the_dpo_limit(tokenizer, tmp_path):
    models = {"model": make_model(tokenizer, seed=1), "ref_model": make_model(tokenizer, seed=0)}
    theirs = trl.DPOTrainer(
        **models, args=_dpo_config(tmp_path / "trl"), train_dataset=varied_pairs(PAIRS), processing_class=tokenizer
    )
    ours = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=from_dpo_config(_dpo_config(tmp_path / "ours"), baseline="dpo"),
        train_dataset=varied_pairs(PAIRS),
        processing_class=tokenizer,
    )
    assert len(ours.train_dataset) == len(theirs.train_dataset) == PAIRS  # nothing dropped
    assert max(len(r["prompt_ids"]) for r in ours.train_dataset) >= MAX_LENGTH  # keep_start would drop it
    assert ours.routes.layout == "whole rows"
    batch = ours.data_collator([ours.train_dataset[i] for i in range(PAIRS)])
    trl_batch = theirs.data_collator([theirs.train_dataset[i] for i in range(PAIRS)])
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert batch[key].tolist() == trl_batch[key].tolist(), key
    assert batch["input_ids"].shape[1] == MAX_LENGTH
    our_loss, our_grads = _loss_and_grads(ours, batch)
    trl_loss, trl_grads = _loss_and_grads(theirs, trl_batch)
    torch.testing.assert_close(our_loss, trl_loss, atol=2e-5, rtol=1e-4)
    assert our_grads.keys() == trl_grads.keys() and max(g.abs().max().item() for g in trl_grads.values()) > 1e-4
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], trl_grads[name], atol=2e-5, rtol=1e-4, msg=name)


def test_keep_end_trains_ti_dpo_on_whole_rows(tokenizer, tmp_path):
    args = TIDPOConfig(
        preset="paper",
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=PAIRS,
        max_length=MAX_LENGTH,
        truncation_mode="keep_end",
        anchor_max_new_tokens=3,
        report_to="none",
        use_cpu=True,
        learning_rate=0.5,
        optim="sgd",
        logging_steps=1,
    )
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=args,
        train_dataset=varied_pairs(PAIRS),
        processing_class=tokenizer,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    log = trainer.state.log_history[0]
    assert trainer.routes.layout == "whole rows" and torch.isfinite(torch.tensor(log["loss"]))
    assert log["triplet/loss"] > 0 and log["weights/max"] > log["weights/min"]  # anchors and weights were used
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"share_prompt": True}, "set share_prompt=False"),
        ({"importance": "columns"}, "use truncation_mode='keep_start'"),
        ({"truncation_mode": "middle"}, "must be 'keep_start' or 'keep_end'"),
    ],
)
def test_keep_end_clashes_are_one_line(tmp_path, options, message):
    with pytest.raises(ValueError, match=message) as err:
        TIDPOConfig(output_dir=str(tmp_path), **{"truncation_mode": "keep_end", **options})
    assert "\n" not in str(err.value)
