"""Part ``memory``: peak memory of full and LoRA TI-DPO at Qwen2.5's 0.5B, 1.5B, 3B and 7B shapes on one GPU
(random weights, bf16), smallest first, as far as the card holds them and the part's budget lasts.

Each configuration: 2 pairs a step, prompt 128 + response 383 tokens (+ EOS), γ = 0.1 with 16-token anchors,
AdamW, 2 steps; full fine-tuning against an explicit frozen bf16 reference; LoRA r = 16 on every linear layer
against the policy with its adapters off. Peak is CUDA's max allocated over the run (on a CPU: the process's peak
resident set, which only grows: the CPU mode checks that the part runs)."""

from __future__ import annotations

import gc
import os
import tempfile
import time

from common import QWEN, Report, device, parser, peak_mib, qwen, sync


def one(shape: str, lora: bool, dev, dtype, scratch: str) -> dict:
    import torch
    from peft import LoraConfig
    from speed import build_tokenizer, synthetic_pairs

    from tidpo import TIDPOConfig, TIDPOTrainer

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.monotonic()
    model = qwen(shape, dtype, dev)
    ref = None if lora else qwen(shape, dtype, dev)
    vocab = QWEN[shape]["vocab_size"]
    tiny = shape == "tiny"
    prompt, response = (16, 31) if tiny else (128, 383)
    args = TIDPOConfig(
        output_dir=scratch,
        per_device_train_batch_size=2,
        max_steps=2,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        disable_tqdm=True,
        max_length=prompt + response + 1,
        triplet_weight=0.1,
        anchor_max_new_tokens=16,
        use_cpu=dev.type == "cpu",
        bf16=dtype == torch.bfloat16,
        dataloader_num_workers=0,
    )
    peft = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear") if lora else None
    trainer = TIDPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        processing_class=build_tokenizer(vocab),
        train_dataset=synthetic_pairs(4, prompt, response, vocab, seed=1),
        peft_config=peft,
    )
    trainer.train()
    sync(dev)
    loss = trainer.state.log_history[-2].get("loss") if len(trainer.state.log_history) > 1 else None
    result = {
        "shape": shape,
        "lora": lora,
        "peak_mib": peak_mib(dev),
        "seconds": time.monotonic() - start,
        "loss": loss,
        "routes": str(trainer.routes),
    }
    del trainer, model, ref
    return result


def run_rows(report, shapes, cpu: bool, dev, dtype, deadline: float) -> list[dict]:
    """Every shape, full then LoRA, smallest first; a full model that does not fit stops the larger full ones."""
    import torch

    rows, full_fits = [], True
    for shape in shapes:
        for lora in (False,) if cpu else (False, True):
            if time.monotonic() > deadline - 5:
                rows.append({"shape": shape, "lora": lora, "error": "not run: the part's budget was spent"})
                continue
            if not lora and not full_fits:
                rows.append({"shape": shape, "lora": lora, "error": "not run: a smaller full model did not fit"})
                continue
            with tempfile.TemporaryDirectory() as scratch:
                try:
                    rows.append(one(shape, lora, dev, dtype, scratch))
                except torch.OutOfMemoryError as err:
                    rows.append({"shape": shape, "lora": lora, "error": f"out of memory: {str(err).splitlines()[0]}"})
                    full_fits = full_fits and lora
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            report["rows"] = rows
    return rows


def main() -> int:
    args = parser(__doc__).parse_args()
    import torch

    dev = device(args.cpu)
    shapes = ["tiny"] if args.cpu else ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b"]
    dtype = torch.float32 if args.cpu else torch.bfloat16
    deadline = time.monotonic() + float(os.environ.get("TIDPO_PART_BUDGET", "55"))
    report = Report(args.out, "memory", dtype=str(dtype), device=str(dev), rows=[])
    rows = run_rows(report, shapes, args.cpu, dev, dtype, deadline)
    card = torch.cuda.get_device_name(0) if dev.type == "cuda" else "CPU"
    report.line(
        f"Peak memory (MiB) on {card}, {str(dtype).removeprefix('torch.')} weights, 2 pairs a step of 512 tokens "
        "a row (CPU mode: 48), γ = 0.1, AdamW:"
    )
    report.line("")
    report.line("| shape | fine-tuning | peak MiB | s | first loss | note |")
    report.line("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        kind = "LoRA r16" if r["lora"] else "full"
        if "error" in r:
            report.line(f"| {r['shape']} | {kind} | | | | {r['error']} |")
        else:
            report.line(f"| {r['shape']} | {kind} | {r['peak_mib']:.0f} | {r['seconds']:.1f} | {r['loss']} | |")
    return 0 if any("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
