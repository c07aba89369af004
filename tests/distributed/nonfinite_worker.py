"""A non-finite number noted on one rank only, under ``torchrun --nproc_per_node 2`` (DDP over gloo, CPU).

Rank 1 notes a NaN loss in the micro-batch of step ``--bad_step`` without putting it in the gradients (so DDP's
gradient all-reduce cannot carry it to rank 0): only the update guard's all-reduced flag can tell rank 0. Each rank
writes ``--out``/rank<N>.json with the error it raised (or none), the updates it skipped and a checksum of its
parameters, so a test can check that both ranks took the same decision.

    torchrun --standalone --nproc_per_node 2 tests/distributed/nonfinite_worker.py --out DIR --on_nonfinite skip
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--on_nonfinite", default="raise")
    p.add_argument("--bad_step", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()

    from tests.tiny import make_model, make_tokenizer
    from tests.training.helpers import sentiment_pairs
    from tidpo import TIDPOConfig, TIDPOTrainer
    from tidpo.training.nonfinite import NonFiniteError

    rank = int(os.environ.get("RANK", "0"))

    class OneRankNaN(TIDPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if rank == 1 and self.state.global_step + 1 == args.bad_step and model.training:
                self.guard.check("train", inputs, loss=torch.tensor(math.nan))  # noted as the step notes a NaN
            return out

    tokenizer = make_tokenizer()
    config = TIDPOConfig(
        preset="paper", output_dir=str(Path(args.out) / "run"), per_device_train_batch_size=2, max_steps=args.steps,
        learning_rate=1e-2, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0,
        max_length=64, triplet_weight=0.0, dataloader_num_workers=0, disable_tqdm=True,
        on_nonfinite=args.on_nonfinite,
    )  # fmt: skip
    trainer = OneRankNaN(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0), args=config,
        train_dataset=sentiment_pairs(16), processing_class=tokenizer,
    )  # fmt: skip
    error = None
    try:
        trainer.train()
    except NonFiniteError as err:
        error = str(err)
    checksum = sum(float(param.detach().double().sum()) for param in trainer.model.parameters())
    result = {
        "rank": rank,
        "error": error,
        "skipped": trainer._skipped_updates,
        "global_step": trainer.state.global_step,
        "checksum": checksum,
    }
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(result))
    from tidpo.cli.main import leave_process

    torch.distributed.barrier()
    leave_process(0)


if __name__ == "__main__":
    main()
