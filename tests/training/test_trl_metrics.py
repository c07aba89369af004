"""TRL's diagnostics logits/chosen, logits/rejected, entropy, mean_token_accuracy (by-products of the chunked head;
reduced chunk by chunk from the full logits otherwise) and num_tokens (the run's tokens so far), checked against the
model's own logits on the same batch."""

from __future__ import annotations

import pytest
import torch

from tests.training.helpers import collated_batch, make_trainer


def _expected(model, batch):
    """The four per-batch means from the model's full logits (response tokens only)."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    mask = batch["completion_mask"][:, 1:].float()
    targets = batch["input_ids"][:, 1:]
    probs = logits.softmax(-1)
    per_token = {
        "entropy": -(probs * probs.clamp(min=1e-30).log()).sum(-1),
        "mean_token_accuracy": (logits.argmax(-1) == targets).float(),
        "logits": logits.mean(-1),
    }
    rows = {name: (value * mask).sum(-1) / mask.sum(-1) for name, value in per_token.items()}
    half = batch["input_ids"].shape[0] // 2
    return {
        "logits/chosen": rows["logits"][:half].mean().item(),
        "logits/rejected": rows["logits"][half:].mean().item(),
        "entropy": rows["entropy"].mean().item(),
        "mean_token_accuracy": rows["mean_token_accuracy"].mean().item(),
    }


@pytest.mark.parametrize("chunked", [True, False])
def test_diagnostics_equal_the_full_logits(tokenizer, tmp_path, chunked):
    trainer = make_trainer(tokenizer, tmp_path, baseline="dpo", chunked_logits=chunked)
    assert trainer.routes.head == ("chunked" if chunked else "full logits")
    batch = collated_batch(tokenizer, 4)
    trainer.model.eval()
    trainer.compute_loss(trainer.model, batch)
    logged = trainer._metrics.pop("eval")
    for name, value in _expected(trainer.model, batch).items():
        assert logged[name] == pytest.approx(value, abs=1e-5), name


def test_num_tokens_counts_every_row_run(tokenizer, tmp_path):
    trainer = make_trainer(tokenizer, tmp_path, baseline="dpo", max_steps=2, per_device_train_batch_size=2)
    seen = []
    collate = trainer.data_collator
    trainer.data_collator = lambda rows: seen.append(collate(rows)) or seen[-1]
    trainer.train()
    counts = [row["num_tokens"] for row in trainer.state.log_history if "num_tokens" in row]
    per_step = [int(batch["attention_mask"].sum()) for batch in seen]
    assert counts == [per_step[0], per_step[0] + per_step[1]]
