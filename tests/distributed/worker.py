"""Steps of tidpo's own training step code on a tiny model, in one process or under ``torchrun`` (gloo, CPU).

Under ``torchrun --nproc_per_node 2`` the policy and the reference are sharded with
``torch.distributed.fsdp.fully_shard`` as accelerate does for FSDP2 on a GPU (each decoder layer, then the root),
and each rank takes its half of every global batch; in one process nothing is sharded and each step takes the
whole global batch. Both write the per-step loss and metrics and the final parameters to ``--out`` (rank 0), so a
test can compare them.

    python tests/distributed/worker.py --out single.pt [--lora] [--triplet_weight 0.1]
    torchrun --nproc_per_node 2 tests/distributed/worker.py --out fsdp2.pt [--lora]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

WORDS = "the movie was good bad great awful film story plot loved hated fine".split()


def rows(n: int) -> list[dict]:
    r = random.Random(0)
    return [
        {
            "prompt": " ".join(["tell", "me", "about", "the"] + [r.choice(WORDS) for _ in range(r.randint(1, 4))]),
            "chosen": " " + " ".join(r.choice(WORDS) for _ in range(r.randint(2, 6))),
            "rejected": " " + " ".join(r.choice(WORDS) for _ in range(r.randint(2, 6))),
        }
        for _ in range(n)
    ]


def shard(model, lora: bool):
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if lora else model
    for layer in base.model.layers:
        fully_shard(layer)
    fully_shard(model)
    return model


def full_parameters(model) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    out = {}
    for name, p in model.named_parameters():
        value = p.full_tensor() if isinstance(p, DTensor) else p
        out[name] = value.detach().clone()
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--lora", action="store_true")
    p.add_argument("--triplet_weight", type=float, default=0.0)
    p.add_argument("--anchor_backward", default="auto")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--global_batch", type=int, default=4)
    return p.parse_args()


def with_lora(model):
    """``model`` with LoRA adapters whose B is drawn small, not zero, so the adapters and their gradients are not
    trivially zero."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    return model


def models(args, world: int):
    """The tokenizer, the policy and the reference (``None`` with LoRA: the adapter's frozen copy), sharded when
    there is more than one process."""
    from tests.tiny import make_model, make_tokenizer
    from tidpo.training.reference import frozen_copy

    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    model = make_model(tokenizer, seed=0)
    ref = None
    if args.lora:
        from tidpo.training.reference import add_reference_adapter

        model = with_lora(model)
        add_reference_adapter(model)  # π_ref: a frozen copy of the adapter it arrives with, added before sharding
    else:
        ref = frozen_copy(model)
    if world > 1:
        torch.distributed.init_process_group("gloo")
        model = shard(model, args.lora)
        ref = None if ref is None else shard(ref, False)
    return tokenizer, model, ref


def make_trainer(args, world: int, scratch: str, tokenizer, model, ref):
    """tidpo's trainer over 24 pairs, ``global_batch / world`` pairs a rank; ``train`` feeds it the batches."""
    from datasets import Dataset

    from tidpo import TIDPOConfig, TIDPOTrainer

    config = TIDPOConfig(
        preset="paper",  # the full method: attribution and anchors
        output_dir=scratch,
        use_cpu=True,
        seed=0,
        triplet_weight=args.triplet_weight,
        report_to="none",
        anchor_backward=args.anchor_backward,
        per_device_train_batch_size=args.global_batch // world,
        max_length=64,
        anchor_max_new_tokens=4,
    )
    return TIDPOTrainer(
        model=model, ref_model=ref, args=config, train_dataset=Dataset.from_list(rows(24)), processing_class=tokenizer
    )


def one_step(trainer, model, optimizer, batch) -> torch.Tensor:
    """tidpo's loss and its backward (the anchors' too, when deferred), then the optimizer's step."""
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    if trainer._anchor_backward is not None:
        trainer._anchor_backward.surrogate(model, trainer.engine.layout).backward()
        trainer._anchor_backward = None
    optimizer.step()
    optimizer.zero_grad()
    trainer.state.global_step += 1
    return loss


def train(args, world: int, rank: int, trainer, model) -> list[dict]:
    """``args.steps`` steps, each on this rank's share of the global batch; per step, the loss (averaged over the
    ranks) and the logged metrics."""
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-2)
    data, history = trainer.train_dataset, []
    per_rank = args.global_batch // world
    for step in range(args.steps):
        first = step * args.global_batch + rank * per_rank
        batch = trainer.data_collator([data[i] for i in range(first, first + per_rank)])
        loss = one_step(trainer, model, optimizer, batch)
        metrics = trainer._metrics.pop("train")
        mean_loss = loss.detach().clone()
        if world > 1:
            torch.distributed.all_reduce(mean_loss)
            mean_loss /= world
        history.append({"loss": float(mean_loss), **metrics})
    return history


def main() -> None:
    args = parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    tokenizer, model, ref = models(args, world)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = make_trainer(args, world, scratch, tokenizer, model, ref)
        rank = trainer.accelerator.process_index
        model.train()
        start_params = full_parameters(model)
        history = train(args, world, rank, trainer, model)
        params = full_parameters(model)
        if rank == 0:
            torch.save(
                {"history": history, "params": params, "start": start_params, "routes": str(trainer.routes)}, args.out
            )
        if world > 1:
            from tidpo.cli.main import leave_process

            torch.distributed.barrier()
            leave_process(0)  # gloo's teardown can hang at exit; see leave_process


if __name__ == "__main__":
    main()
