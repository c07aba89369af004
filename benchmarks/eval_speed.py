"""Preference evaluation at forward-only speed: ``tidpo eval``'s path (``TIDPOTrainer.evaluate``, uniform weights,
no attribution, no gradient graph) against a bare forward of the two models on the same batches, with the pairs in
dataset order (``eval_group_by_length=False``, before), longest first (the default, after) and longest first with
``padding_free`` (packed rows, no padding at all), in one run.

SmolLM2-135M-Instruct with a LoRA adapter (its base, adapters off, is the reference) on Anthropic-HH dev pairs
(``--hh``, a local copy of the harmless-base pairs, or env ``HH``). The bare loop runs the collated batches
through the policy and the reference under ``torch.no_grad()`` and does nothing with the logits, so the ratio is
what the evaluation adds on top of the two forwards (log-probs, KL, metrics, the Trainer's loop).

    python benchmarks/eval_speed.py                  # writes a section of docs/performance.md
    python benchmarks/eval_speed.py --pairs 16       # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import ROOT, machine, write_markdown  # noqa: E402

HH = Path(os.environ.get("HH", ROOT.parent / "shared" / "data" / "hh-rlhf-harmless"))


def build(args):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tidpo import load_preference_data
    from tidpo.models import builtin_model_path

    path = args.model or str(builtin_model_path("smollm2-135m-instruct"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(path), LoraConfig(r=16, target_modules="all-linear", lora_dropout=0.0)
    )
    data = load_preference_data(str(args.data), on_bad_row="skip").select(range(args.pairs))
    return model, tokenizer, data


def evaluate_path(model, tokenizer, data, args, group: bool, packed: bool, warm_up: bool) -> tuple[float, int, list]:
    """Seconds of ``trainer.evaluate()`` on ``data``, the pairs kept, and the collated batches it ran."""
    from tidpo import TIDPOConfig, TIDPOTrainer

    with tempfile.TemporaryDirectory() as scratch:
        config = TIDPOConfig(
            output_dir=scratch,
            per_device_eval_batch_size=args.batch_size,
            max_length=args.max_length,
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            dataloader_pin_memory=False,
            eval_group_by_length=group,
            padding_free=packed,
        )
        trainer = TIDPOTrainer(
            model=model, args=config, eval_dataset=data, processing_class=tokenizer, evaluation_only=True
        )
        batches = list(trainer.get_eval_dataloader())
        if warm_up:
            trainer.evaluate(data.select(range(min(8, len(data)))))
        start = time.perf_counter()
        trainer.evaluate()
        seconds = time.perf_counter() - start
    return seconds, len(trainer.eval_dataset), batches


@torch.no_grad()
def bare_forward(model, batches) -> float:
    """Seconds of the policy and the reference (adapters off) forward on every batch, nothing else (run after
    ``evaluate_path``, so the threads are warm)."""
    model.eval()

    def once():
        for batch in batches:
            ids, mask = batch["input_ids"], batch["attention_mask"]
            model(input_ids=ids, attention_mask=mask)
            with model.disable_adapter():
                model(input_ids=ids, attention_mask=mask)

    start = time.perf_counter()
    once()
    return time.perf_counter() - start


MODES = (  # (label, eval_group_by_length, padding_free), timed in this order
    ("dataset order (before)", False, False),
    ("longest first (`eval_group_by_length`, the default)", True, False),
    ("longest first, `padding_free` (packed rows)", True, True),
)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HH / "dev.conversational.jsonl")
    p.add_argument("--model", help="model folder (default: the built-in SmolLM2-135M-Instruct)")
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_length", type=int, default=256)
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "performance.md")
    return p


def _shared_prompt_positions(batch) -> int:
    """What the shared-prompt layout runs for one batch: its prompts once (B, P), both responses (2B, R)."""
    prompts = batch["prompt_input_ids"]
    return prompts.numel() + 2 * prompts.shape[0] * int(batch["completion_mask"].sum(-1).max())


def positions_per_pair(batches, pairs: int) -> tuple[float, float, float]:
    """Per row: real positions and positions with padding (whole rows); per pair: the shared-prompt layout's."""
    real = sum(int(b["attention_mask"].sum()) for b in batches) / 2 / pairs
    padded = sum(b["attention_mask"].numel() for b in batches) / 2 / pairs
    shared = sum(_shared_prompt_positions(b) for b in batches) / pairs
    return real, padded, shared


def measure(model, tokenizer, data, args) -> list[tuple]:
    """One row per mode of ``MODES``: ``(label, packed, eval_s, bare_s, pairs, real, padded, shared)``."""
    rows = []
    for i, (label, group, packed) in enumerate(MODES):
        eval_s, pairs, batches = evaluate_path(model, tokenizer, data, args, group, packed, warm_up=i == 0)
        bare_s = bare_forward(model, batches)
        real, padded, shared = positions_per_pair(batches, pairs)
        rows.append((label, packed, eval_s, bare_s, pairs, real, padded, shared))
        print(f"{label}: evaluate {eval_s:.1f}s, bare {bare_s:.1f}s, {real:.0f}/{padded:.0f} per row, {shared:.0f}")
    return rows


def _table_rows(rows) -> list[str]:
    """Two lines per mode: the bare forward (ratio 1), then the evaluation."""
    lines = []
    for label, packed, eval_s, bare_s, pairs, _real, padded, shared in rows:
        layout = f"{2 * _real:.0f} (packed)" if packed else f"{shared:.0f}"
        lines += [
            f"| {label} | {padded:.0f} | — | bare forward, policy + reference, `torch.no_grad()` | {bare_s:.2f} | "
            f"{pairs / bare_s:.2f} | 1.00 |",
            f"| {label} | {padded:.0f} | {layout} | `TIDPOTrainer.evaluate` (what `tidpo eval` runs) | {eval_s:.2f} | "
            f"{pairs / eval_s:.2f} | {eval_s / bare_s:.2f} |",
        ]
    return lines


def page_section(rows, args, argv) -> str:
    """The section of docs/performance.md: how it was run, the table, and the speed-ups against dataset order."""
    m = machine()
    command = "python benchmarks/eval_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    pairs, real = rows[0][4], rows[0][5]
    lines = [
        f"### CPU: `tidpo eval` against a bare forward of the two models (SmolLM2-135M-Instruct + LoRA, HH dev, "
        f"batch {args.batch_size}, max_length {args.max_length})",
        "",
        f"`{command.strip()}` on {m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, {dt.date.today()}. "
        f"{pairs} pairs, {real:.0f} real positions per row (a pair's prompt + one response) on average; one warm-up "
        "evaluation of 8 pairs, then each order timed once; the bare forward runs the same collated batches.",
        "",
        "| pairs in | positions per row (padding included) | per pair, shared-prompt layout | path | seconds | pairs/s "
        "| ratio to the bare forward |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *_table_rows(rows),
        "",
        f"Against dataset order, `tidpo eval` ran {rows[0][2] / rows[1][2]:.2f}× the pairs/s longest first and "
        f"{rows[0][2] / rows[2][2]:.2f}× with packed rows.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found (pass --data, or set HH to the HH harmless-base folder)")
    torch.manual_seed(0)
    model, tokenizer, data = build(args)
    rows = measure(model, tokenizer, data, args)
    text = page_section(rows, args, argv)
    print(text)
    write_markdown(args.markdown, "eval-speed", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
