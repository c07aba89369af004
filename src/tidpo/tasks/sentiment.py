"""The built-in sentiment task: steer a model toward positive sentiment when it continues movie-review openings.

The reward is VADER's compound score (``vaderSentiment``, a lexicon scorer, in [-1, 1]) of the continuation alone.
The preference set is built on-policy: for each opening (``openings.txt``, written for this project) the model
samples several continuations (8 by default); the highest-scoring one is *chosen* and the lowest *rejected*, kept
when their reward gap is at least ``min_gap``. Held-out openings (the last ``HELD_OUT``, on films never trained on)
are never trained on; the demo samples on them before and after training to measure the reward.

Sampling is plain ancestral sampling at temperature 1 (no top-p, no top-k): the samples then come from the model's
own distribution, which the KL estimate of :mod:`tidpo.eval.generation` needs, and it skips a sort of the whole
vocabulary at every step (four times faster here).
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from tidpo.eval.generation import SamplingSettings, generate_samples

OPENINGS_FILE = Path(__file__).with_name("openings.txt")
HELD_OUT = 48


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


def reward(prompts: list[str], completions: list[str], **_) -> list[float]:
    """The task's reward as a ``module:function`` reward (``tidpo.tasks.sentiment:reward``): VADER's compound
    score of each completion alone (the prompt is not scored)."""
    return sentiment_scores(list(completions))


def sample_continuations(
    model, tokenizer, prompts: list[str], n: int, settings: SamplingSettings, seed: int = 0
) -> list[list[str]]:
    """``n`` sampled continuations per prompt (decoded, special tokens dropped)."""
    samples = generate_samples(model, tokenizer, prompts, n, settings, seed)
    return [[s.text for s in samples[i * n : (i + 1) * n]] for i in range(len(prompts))]


def preference_pairs(prompt: str, completions: list[str], min_gap: float = 0.5, pairs: int = 1) -> list[dict]:
    """Best vs worst (then second best vs second worst, up to ``pairs``), keeping pairs whose reward gap is at
    least ``min_gap``; empty continuations are never paired."""
    completions = [c for c in completions if c.strip()]
    scored = sorted(zip(sentiment_scores(completions), completions, strict=True), key=lambda x: x[0], reverse=True)
    out = []
    for i in range(min(pairs, len(scored) // 2)):
        (hi, best), (lo, worst) = scored[i], scored[-1 - i]
        if hi - lo >= min_gap:
            out.append(
                {"prompt": prompt, "chosen": best, "rejected": worst, "chosen_reward": hi, "rejected_reward": lo}
            )
    return out


def build_sentiment_dataset(
    model,
    tokenizer,
    out_dir: Path,
    samples: int = 8,
    seed: int = 0,
    settings: SamplingSettings | None = None,
    min_gap: float = 0.5,
) -> dict:
    """Write ``train.jsonl`` (train openings) and ``test.jsonl`` (held-out openings) into ``out_dir``.

    Returns the counts written (also saved as ``meta.json``).
    """
    settings = settings or SamplingSettings()
    train_openings, held_out = load_openings()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"samples_per_opening": samples, "seed": seed, "min_gap": min_gap, "sampling": settings.__dict__}
    for split, prompts in (("train", train_openings), ("test", held_out)):
        groups = sample_continuations(model, tokenizer, prompts, samples, settings, seed)
        pairs = [pair for p, g in zip(prompts, groups, strict=True) for pair in preference_pairs(p, g, min_gap)]
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


@functools.cache
def lexicon_words() -> frozenset[str]:
    """The lowercase words VADER's lexicon gives a valence (the words that move the reward)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return frozenset(w for w, v in SentimentIntensityAnalyzer().lexicon.items() if v != 0 and w.isalpha())


def lexicon_token_relevance(tokens: list[str]) -> list[bool]:
    """Per token: does it overlap a word that VADER's lexicon scores? (The ground truth of importance recovery;
    ``tokens`` are the texts each token adds, as :func:`tidpo.eval.explain.token_texts` gives them.)"""
    from tidpo.eval.importance import relevance_by_words

    return relevance_by_words(tokens, lexicon_words().__contains__)


def lexicon_weight_columns(row: dict, tokenizer, relevant: float = 1.0, other: float = 0.0) -> dict:
    """``chosen_weights`` / ``rejected_weights`` for ``importance="columns"``: ``relevant`` on each response token
    that overlaps a word VADER's lexicon scores, ``other`` elsewhere (one value per response token as tidpo
    tokenises it, the final EOS left out). Map it over a dataset: ``data.map(lexicon_weight_columns,
    fn_kwargs={"tokenizer": tok})``. The lexicon's own words are the reward's, so these weights are an upper bound
    on what a token weighting can know."""
    from tidpo.data import tokenize_preference_row
    from tidpo.eval.explain import token_texts

    ids = tokenize_preference_row(row, tokenizer)
    context = ids["prompt_ids"][-1:]
    out = {}
    for side in ("chosen", "rejected"):
        tokens = token_texts(tokenizer, ids[f"{side}_ids"][:-1], context=context)
        out[f"{side}_weights"] = [relevant if r else other for r in lexicon_token_relevance(tokens)]
    return out
