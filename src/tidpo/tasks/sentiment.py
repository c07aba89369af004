"""The built-in sentiment task: steer a model toward positive sentiment when it continues movie-review openings.

The reward is VADER's compound score (``vaderSentiment``, a lexicon scorer, in [-1, 1]) of the continuation alone.
The preference set is built on-policy: for each opening (``openings.txt``, written for this project) the model
samples a few continuations; the highest-scoring one is *chosen* and the lowest *rejected* (a second pair from the
runners-up when their gap is large enough). Held-out openings are never trained on; the demo samples on them
before and after training to measure the reward.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

OPENINGS_FILE = Path(__file__).with_name("openings.txt")
HELD_OUT = 24


@dataclass
class SamplingSettings:
    """How continuations are sampled, both to build the data and to measure the reward."""

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 0.95
    batch_size: int = 48


def load_openings() -> tuple[list[str], list[str]]:
    """``(train, held_out)`` openings; the last ``HELD_OUT`` lines of ``openings.txt`` are held out."""
    lines = [ln.rstrip("\n") for ln in OPENINGS_FILE.read_text(encoding="utf-8").splitlines()]
    openings = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    return openings[:-HELD_OUT], openings[-HELD_OUT:]


def sentiment_scores(texts: list[str]) -> list[float]:
    """VADER compound score of each text, in [-1, 1]."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [analyzer.polarity_scores(text)["compound"] for text in texts]


@torch.no_grad()
def sample_continuations(
    model, tokenizer, prompts: list[str], n: int, settings: SamplingSettings, seed: int = 0
) -> list[list[str]]:
    """``n`` sampled continuations per prompt (decoded, special tokens dropped), batched with left padding."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    try:
        for start in tqdm(range(0, len(flat), settings.batch_size), desc="sampling", leave=False):
            batch = tokenizer(flat[start : start + settings.batch_size], return_tensors="pt", padding=True)
            out = model.generate(
                **batch,
                do_sample=True,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=0,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


def mean_reward(model, tokenizer, prompts: list[str], n: int, settings: SamplingSettings, seed: int = 0) -> dict:
    """Mean and per-sample reward of ``n`` continuations per prompt, plus the samples themselves."""
    samples = sample_continuations(model, tokenizer, prompts, n, settings, seed)
    flat = [s for group in samples for s in group]
    scores = sentiment_scores(flat)
    return {
        "mean_reward": sum(scores) / len(scores),
        "positive_fraction": sum(s > 0.05 for s in scores) / len(scores),
        "samples": [
            {"prompt": p, "completion": c, "reward": r}
            for p, c, r in zip([p for p in prompts for _ in range(n)], flat, scores, strict=True)
        ],
    }


def preference_pairs(prompt: str, completions: list[str], min_gap: float = 0.1) -> list[dict]:
    """Best vs worst, then second best vs second worst, keeping pairs whose reward gap is at least ``min_gap``."""
    scored = sorted(zip(sentiment_scores(completions), completions, strict=True), key=lambda x: x[0], reverse=True)
    pairs = []
    for i in range(len(scored) // 2):
        (hi, best), (lo, worst) = scored[i], scored[-1 - i]
        if hi - lo >= min_gap and best.strip() and worst.strip():
            pairs.append(
                {"prompt": prompt, "chosen": best, "rejected": worst, "chosen_reward": hi, "rejected_reward": lo}
            )
    return pairs


def build_sentiment_dataset(
    model, tokenizer, out_dir: Path, samples: int = 4, seed: int = 0, settings: SamplingSettings | None = None
) -> dict:
    """Write ``train.jsonl`` (train openings) and ``test.jsonl`` (held-out openings) into ``out_dir``.

    Returns the counts written (also saved as ``meta.json``).
    """
    settings = settings or SamplingSettings()
    train_openings, held_out = load_openings()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"samples_per_opening": samples, "seed": seed, "sampling": settings.__dict__}
    for split, prompts in (("train", train_openings), ("test", held_out)):
        groups = sample_continuations(model, tokenizer, prompts, samples, settings, seed)
        pairs = [pair for p, g in zip(prompts, groups, strict=True) for pair in preference_pairs(p, g)]
        random.Random(seed).shuffle(pairs)
        tmp = out_dir / f".{split}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for pair in pairs:
                f.write(json.dumps(pair, ensure_ascii=False) + "\n")
        tmp.replace(out_dir / f"{split}.jsonl")
        meta[f"{split}_pairs"] = len(pairs)
        meta[f"{split}_openings"] = len(prompts)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
