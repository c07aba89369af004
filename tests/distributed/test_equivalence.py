"""Two processes (gloo, CPU) against one, on the same global batches: DDP through accelerate (``torchrun`` +
``tidpo train --use_cpu``) and FSDP2 (``fully_shard``, applied by ``worker.py`` as accelerate does on a GPU),
5 steps of TI-DPO with LoRA and with full fine-tuning. γ = 0 for the comparison (anchors differ by rank by
design); γ > 0 is run separately and must stay finite."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tiny import make_model, make_tokenizer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
TOLERANCE = 1e-4
SKIP_KEYS = ("time/", "runtime", "per_second", "step", "epoch")


def run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"


def torchrun(*args: str) -> list[str]:
    return [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", *args]


def compare_logs(one: list[dict], two: list[dict]) -> None:
    assert len(one) == len(two) > 0
    for a, b in zip(one, two, strict=True):
        keys = [k for k in a if isinstance(a[k], float) and not any(s in k for s in SKIP_KEYS)]
        assert keys and all(k in b for k in keys), (sorted(a), sorted(b))
        worst = max(keys, key=lambda k: abs(a[k] - b[k]))
        assert abs(a[worst] - b[worst]) < TOLERANCE, (worst, a[worst], b[worst])


def compare_params(one: dict[str, torch.Tensor], two: dict[str, torch.Tensor], start: dict[str, torch.Tensor]):
    assert one.keys() == two.keys()
    moved = max((one[k].float() - start[k].float()).abs().max().item() for k in one if k in start)
    assert moved > 1e-3, "training did not move the parameters: the comparison would prove nothing"
    worst = max(one, key=lambda k: (one[k] - two[k]).abs().max().item())
    assert (one[worst] - two[worst]).abs().max().item() < TOLERANCE, worst


# ---- DDP through accelerate -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=0).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    sys.path.insert(0, str(HERE))
    from worker import rows

    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(24)))
    return folder


def train_args(folder: Path, out: str, batch: int, *extra: str) -> list[str]:
    return [
        str(BIN / "tidpo"), "train", "--model", str(folder / "model"), "--dataset", str(folder / "data.jsonl"),
        "--output_dir", str(folder / out), "--use_cpu", "--max_steps", "5", "--logging_steps", "1",
        "--learning_rate", "1e-2", "--report_to", "none", "--save_strategy", "no", "--seed", "0",
        "--per_device_train_batch_size", str(batch), *extra,
    ]  # fmt: skip


def read_run(folder: Path) -> tuple[list[dict], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    logs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    weights = folder / ("adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else
                        "model.safetensors")  # fmt: skip
    return [entry for entry in logs if "loss" in entry], load_file(weights)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_ddp_two_processes_match_one(cli_inputs, lora):
    extra = ["--triplet_weight", "0"] + (["--use_lora", "--lora_dropout", "0"] if lora else [])
    name = "lora" if lora else "full"
    run(train_args(cli_inputs, f"one-{name}", 4, *extra), cli_inputs)
    run(torchrun(*train_args(cli_inputs, f"two-{name}", 2, *extra)), cli_inputs)
    (log1, params1), (log2, params2) = read_run(cli_inputs / f"one-{name}"), read_run(cli_inputs / f"two-{name}")
    compare_logs(log1, log2)
    if lora:  # adapters start with B = 0: any trained B entry is a movement
        start = {k: torch.zeros_like(v) for k, v in params1.items() if "lora_B" in k}
    else:
        from safetensors.torch import load_file

        start = load_file(cli_inputs / "model" / "model.safetensors")
    compare_params(params1, params2, start)


def test_ddp_with_anchors_stays_finite_and_the_deferred_backward_syncs_like_the_joint_one(cli_inputs):
    """γ > 0: each rank draws its own anchors, from (seed, rank, step), so two runs that differ only in where the
    anchors' backward runs (inside the main backward, or as a second backward after it, which DDP all-reduces
    again) must take the same steps."""
    for backward in ("joint", "deferred"):
        extra = ("--triplet_weight", "0.1", "--share_prompt", "false", "--anchor_backward", backward)
        run(torchrun(*train_args(cli_inputs, f"two-{backward}", 2, *extra)), cli_inputs)
    (joint_log, joint), (deferred_log, deferred) = (read_run(cli_inputs / f"two-{b}") for b in ("joint", "deferred"))
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["triplet/loss"]) for e in joint_log)
    assert any(e["triplet/loss"] > 0 for e in joint_log)
    compare_logs(joint_log, deferred_log)
    from safetensors.torch import load_file

    compare_params(joint, deferred, load_file(cli_inputs / "model" / "model.safetensors"))


# ---- FSDP2 (fully_shard) around tidpo's step code -------------------------------------------------------------
def worker(tmp_path: Path, out: str, two: bool, *extra: str) -> dict:
    script = [str(HERE / "worker.py"), "--out", str(tmp_path / out), *extra]
    run(torchrun(*script) if two else [sys.executable, *script], tmp_path)
    return torch.load(tmp_path / out)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp2_two_processes_match_one(tmp_path, lora):
    extra = ["--lora"] if lora else []
    one, two = worker(tmp_path, "one.pt", False, *extra), worker(tmp_path, "two.pt", True, *extra)
    assert "fully_shard shards the output layer" in two["routes"]  # the sharded run took the full-logits head
    compare_logs(one["history"], two["history"])
    start = one["start"]
    compare_params(one["params"], two["params"], start)


def test_fsdp2_with_anchors_stays_finite_and_the_deferred_backward_syncs_like_the_joint_one(tmp_path):
    runs = {b: worker(tmp_path, f"{b}.pt", True, "--triplet_weight", "0.1", "--anchor_backward", b)
            for b in ("joint", "deferred")}  # fmt: skip
    assert "anchor_backward=deferred" in runs["deferred"]["routes"]
    assert all(math.isfinite(h["loss"]) and math.isfinite(h["triplet/loss"]) for h in runs["joint"]["history"])
    assert any(h["triplet/loss"] > 0 for h in runs["joint"]["history"])
    compare_logs(runs["joint"]["history"], runs["deferred"]["history"])
    compare_params(runs["joint"]["params"], runs["deferred"]["params"], runs["joint"]["start"])
