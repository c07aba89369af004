"""What the shared prompt saves on real dialogue data: SmolLM2-135M-Instruct with LoRA on Anthropic-HH pairs,
whose prompts (the conversation so far) are longer than their responses. Same process, same pairs, each
configuration with ``share_prompt`` on and off; the median step time after a warm-up step, and the first step's
logged numbers side by side (they must agree: sharing changes cost, not results).

    python benchmarks/hh_shared_prompt.py                       # writes a section of docs/performance.md
    python benchmarks/hh_shared_prompt.py --steps 2 --pairs 2   # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import ROOT, _StepTimer, machine, write_markdown  # noqa: E402

HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "train.jsonl"
CONFIGS = {  # name -> TIDPOConfig overrides (paper preset otherwise)
    "TI-DPO γ=0 (fused)": {"triplet_weight": 0.0},
    "TI-DPO γ=0, official preset (sequence span)": {"preset": "official", "triplet_weight": 0.0},
    "DPO mode": {"baseline": "dpo"},
}
CHECKED = ("loss", "rewards/margins", "logps/rejected")


def run(name: str, share: bool, args) -> dict:
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tidpo import TIDPOConfig, TIDPOTrainer, load_preference_data
    from tidpo.models import builtin_model_path

    path = builtin_model_path("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    data = load_preference_data(args.data).select(range(args.pairs * (args.steps + 1)))
    config = TIDPOConfig(
        output_dir=str(args.scratch), per_device_train_batch_size=args.pairs, max_steps=args.steps + 1,
        learning_rate=1e-4, logging_steps=1, save_strategy="no", report_to="none", seed=0, use_cpu=True,
        max_length=args.max_length, disable_tqdm=True, share_prompt=share, **CONFIGS[name],
    )  # fmt: skip
    trainer = TIDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path), args=config, train_dataset=data, processing_class=tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )  # fmt: skip
    timer = _StepTimer(torch.device("cpu"))
    trainer.add_callback(timer)
    trainer.train()
    first = trainer.state.log_history[0]
    rows = trainer.train_dataset
    share = [len(r["prompt_ids"]) / (len(r["prompt_ids"]) + (len(r["chosen_ids"]) + len(r["rejected_ids"])) / 2)
             for r in rows]  # fmt: skip
    return {"step_s": statistics.median(timer.times[1:]), "first": {k: first[k] for k in CHECKED},
            "prompt_share": statistics.mean(share)}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HH)
    p.add_argument("--pairs", type=int, default=2, help="pairs per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--max_length", type=int, default=256)
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "performance.md")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/tidpo-hh-shared"))
    args = p.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found (../shared/data/hh-rlhf-harmless beside the repository)")
    lines = []
    for name in CONFIGS:
        res = {share: run(name, share, args) for share in (True, False)}
        for key in CHECKED:
            if abs(res[True]["first"][key] - res[False]["first"][key]) > 1e-4 * max(1.0, abs(res[False]["first"][key])):
                raise SystemExit(f"{name}: {key} differs with and without the shared prompt: {res}")
        lines.append(f"| {name} | {res[False]['step_s']:.2f} | {res[True]['step_s']:.2f} | "
                     f"{res[True]['step_s'] / res[False]['step_s']:.2f} |")  # fmt: skip
        share_of_prompt = res[True]["prompt_share"]
        print(lines[-1], flush=True)
    m = machine()
    command = "python benchmarks/hh_shared_prompt.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        f"### CPU: shared prompt on real dialogue data (SmolLM2-135M-Instruct, LoRA r16, {args.pairs} HH pairs a "
        f"step, max_length {args.max_length})",
        "",
        f"`{command.strip()}` on {m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, {dt.date.today()}. "
        f"Median of {args.steps} steps after 1 warm-up. Before truncation, prompts are {share_of_prompt:.0%} of a "
        f"row's tokens on average. The first step's {', '.join(CHECKED)} agree with and without sharing "
        "(checked, 1e-4).",
        "",
        "| configuration | whole rows (s) | shared prompt (s) | ratio |",
        "| --- | --- | --- | --- |",
        *lines,
    ]) + "\n"  # fmt: skip
    print(text)
    write_markdown(args.markdown, "hh-shared-prompt", text)
    return 0 if lines else 1


if __name__ == "__main__":
    raise SystemExit(main())
