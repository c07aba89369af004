"""Generation metrics of a policy against its reference on a prompt set (``tidpo eval --prompts``).

For each prompt, ``n`` completions are sampled from the policy and ``n`` from the reference, each model from the
same seed. Both sets are scored by a reward function named ``module:function`` (called as
``fn(prompts=[...], completions=[...])`` and returning one float per completion, as TRL's reward functions do);
``tidpo.tasks.sentiment:reward`` (VADER's compound score) is the built-in one. The report holds, with the
definitions of :mod:`tidpo.eval.metrics`:

- each model's mean reward with a 95 % bootstrap interval (the prompts resampled, so the ``n`` completions of a
  prompt move together);
- the paired difference policy − reference (completion ``k`` of prompt ``i`` against completion ``k`` of prompt
  ``i``) with its interval, and the win rate of the policy's completions over the reference's;
- ``KL(π ‖ π_ref)`` of the completions, estimated from the policy's own samples as the mean over them of
  ``Σ_t log π(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)`` (unbiased when the samples come from ``π`` itself, i.e.
  temperature 1 with no top-p or top-k; the report says when they do not);
- Distinct-2, Distinct-4 (over all completions of a model), Self-BLEU-4 (within each prompt's ``n`` completions),
  the mean token entropy of the model along its own samples (nats), and the mean completion length in tokens.

The reference's samples depend only on the reference, the prompts and the sampling settings, so they are cached
(``$TIDPO_CACHE/samples/<key>.json``, default ``~/.cache/tidpo``; the key hashes the reference's weights, the
tokenizer's ids of the prompts, ``n``, the settings and the seed) and a second evaluation against the same
reference samples only the policy.

Sampling and teacher-forced scoring are in :mod:`tidpo.eval.sampling`, reward functions in
:mod:`tidpo.eval.rewards`; their public names are importable from here as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tidpo.eval.metrics import distinct_n, mean_and_ci, paired_difference, self_bleu, win_rate
from tidpo.eval.rewards import RewardError, RewardFn, load_reward_fn, score_rewards
from tidpo.eval.sampling import Sample, SamplingSettings, completion_scores, generate_samples
from tidpo.files import write_text

__all__ = [
    "CACHE_VERSION",
    "RewardError",
    "RewardFn",
    "Sample",
    "SamplingSettings",
    "completion_scores",
    "diversity",
    "format_generation_table",
    "generate_samples",
    "generation_report",
    "load_reward_fn",
    "reference_samples",
    "score_rewards",
]

logger = logging.getLogger("tidpo")

CACHE_VERSION = 1


def diversity(samples: Sequence[Sample]) -> dict:
    """Distinct-2/4 over all completions, Self-BLEU-4 within each prompt's completions, mean length in tokens."""
    texts = [s.text for s in samples]
    groups: dict[int, list[str]] = {}
    for s in samples:
        groups.setdefault(s.prompt_index, []).append(s.text)
    scorable = [g for g in groups.values() if len(g) > 1]
    return {
        "distinct_2": distinct_n(texts, 2),
        "distinct_4": distinct_n(texts, 4),
        "self_bleu_4": self_bleu(scorable) if scorable else None,
        "mean_tokens": sum(len(s.token_ids) for s in samples) / len(samples),
    }


def _samples_key(reference, tokenizer, prompts, n: int, settings: SamplingSettings, seed: int) -> str:
    from tidpo.training.ref_cache import weights_digest

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"v{CACHE_VERSION}|{weights_digest(reference)}|n={n}|seed={seed}|{asdict(settings)}|".encode())
    digest.update(f"eos={tokenizer.eos_token_id}|pad={tokenizer.pad_token_id}|".encode())
    for prompt in prompts:
        digest.update(json.dumps(tokenizer(prompt)["input_ids"]).encode())
    return digest.hexdigest()


def _cache_file(key: str) -> Path:
    from tidpo.models import cache_root

    return cache_root() / "samples" / f"{key}.json"


def reference_samples(
    reference, tokenizer, prompts, n: int, settings: SamplingSettings, seed: int, reward_fn: RewardFn, cache: bool
) -> tuple[list[Sample], bool]:
    """The reference's own samples with their scores, from the cache when there (``(samples, from_cache)``).
    Rewards are always recomputed: the cache holds samples, not a particular reward."""
    path = _cache_file(_samples_key(reference, tokenizer, prompts, n, settings, seed)) if cache else None
    samples: list[Sample] | None = None
    if path is not None and path.is_file():
        try:
            samples = [Sample(**row) for row in json.loads(path.read_text(encoding="utf-8"))["samples"]]
        except (ValueError, TypeError, KeyError):
            samples = None  # an unreadable cache file is recomputed and rewritten
    from_cache = samples is not None
    if samples is None:
        samples = generate_samples(reference, tokenizer, prompts, n, settings, seed)
        logps, entropies = completion_scores(reference, tokenizer, samples, settings.temperature)
        for s, lp, h in zip(samples, logps, entropies, strict=True):
            s.logp, s.entropy = lp, h
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text(path, json.dumps({"samples": [asdict(s) for s in samples]}))
            except OSError as err:  # a cache that cannot be written costs a new sampling next time, nothing else
                logger.warning(f"could not cache the reference's samples in {path} ({err})")
    rewards = score_rewards(reward_fn, [s.prompt for s in samples], [s.text for s in samples])
    for s, r in zip(samples, rewards, strict=True):
        s.reward = r
    return samples, from_cache


@contextlib.contextmanager
def _as_reference(policy, reference):
    """Yield the reference model: ``reference`` itself, or the PEFT ``policy`` with its adapters disabled."""
    if reference is not None:
        yield reference
        return
    if not hasattr(policy, "disable_adapter"):
        raise ValueError("no reference model: pass one, or a PEFT policy whose base (adapters off) is the reference")
    with policy.disable_adapter():
        yield policy


def generation_report(
    policy,
    tokenizer,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    n: int = 4,
    settings: SamplingSettings | None = None,
    seed: int = 0,
    reference=None,
    cache: bool = True,
    confidence: float = 0.95,
) -> dict:
    """Sample, score and compare (see the module docstring). ``reference=None`` uses the PEFT policy with its
    adapters disabled. Returns a JSON-ready dict: ``policy`` and ``reference`` (reward mean/low/high, entropy,
    diversity), ``reward_difference``, ``win_rate``, ``kl``, the settings, and every sample."""
    settings = settings or SamplingSettings()
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to sample from")
    with _as_reference(policy, reference) as ref:
        ref_samples, from_cache = reference_samples(ref, tokenizer, prompts, n, settings, seed, reward_fn, cache)
    samples = generate_samples(policy, tokenizer, prompts, n, settings, seed)
    _score_policy_samples(policy, reference, tokenizer, samples, settings.temperature, reward_fn)
    boot = {"confidence": confidence, "groups": [s.prompt_index for s in samples]}
    return {
        "prompts": len(prompts),
        "samples_per_prompt": n,
        "confidence": confidence,
        "seed": seed,
        "sampling": asdict(settings),
        "kl_unbiased": settings.exact,
        "reference_samples_cached": from_cache,
        **_comparison(samples, ref_samples, boot),
        "samples": _paired_samples(samples, ref_samples),
    }


def _score_policy_samples(policy, reference, tokenizer, samples: list[Sample], temperature: float, reward_fn) -> None:
    """Set each policy sample's ``logp``, ``entropy``, ``reward`` and ``extra["kl"]`` (its log-probability under
    the policy minus that under the reference: the KL estimate's term)."""
    logps, entropies = completion_scores(policy, tokenizer, samples, temperature)
    with _as_reference(policy, reference) as ref:
        ref_logps, _ = completion_scores(ref, tokenizer, samples, temperature)
    rewards = score_rewards(reward_fn, [s.prompt for s in samples], [s.text for s in samples])
    for s, lp, h, r, rlp in zip(samples, logps, entropies, rewards, ref_logps, strict=True):
        s.logp, s.entropy, s.reward = lp, h, r
        s.extra["kl"] = lp - rlp


def _side(rows: list[Sample], boot: dict) -> dict:
    """One model's summary: reward with its interval, positive share, mean entropy and diversity."""
    return {
        "reward": mean_and_ci([s.reward for s in rows], **boot),
        "positive_fraction": sum(s.reward > 0.05 for s in rows) / len(rows),
        "entropy": sum(s.entropy for s in rows) / len(rows),
        **diversity(rows),
    }


def _comparison(samples: list[Sample], ref_samples: list[Sample], boot: dict) -> dict:
    """Both models' summaries, the paired reward difference, the win rate and the KL estimate."""
    return {
        "policy": _side(samples, boot),
        "reference": _side(ref_samples, boot),
        "reward_difference": paired_difference([s.reward for s in samples], [s.reward for s in ref_samples], **boot),
        "win_rate": win_rate([s.reward for s in samples], [s.reward for s in ref_samples]),
        "kl": mean_and_ci([s.extra["kl"] for s in samples], **boot),
    }


def _paired_samples(samples: list[Sample], ref_samples: list[Sample]) -> list[dict]:
    """Completion ``k`` of each prompt from both models, side by side."""
    return [
        {
            "prompt": s.prompt,
            "policy": s.text,
            "policy_reward": s.reward,
            "reference": r.text,
            "reference_reward": r.reward,
            "kl": s.extra["kl"],
        }
        for s, r in zip(samples, ref_samples, strict=True)
    ]


def format_generation_table(report: dict) -> str:
    """The report as a small table (policy beside reference)."""

    def interval(stat: dict) -> str:
        return f"{stat['mean']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}]"

    pol, ref = report["policy"], report["reference"]
    pct = round(100 * report["confidence"])
    rows = [
        (f"mean reward [{pct} % CI]", interval(pol["reward"]), interval(ref["reward"])),
        ("positive share (reward > 0.05)", f"{pol['positive_fraction']:.3f}", f"{ref['positive_fraction']:.3f}"),
        ("mean token entropy (nats)", f"{pol['entropy']:.3f}", f"{ref['entropy']:.3f}"),
        ("Distinct-2", f"{pol['distinct_2']:.3f}", f"{ref['distinct_2']:.3f}"),
        ("Distinct-4", f"{pol['distinct_4']:.3f}", f"{ref['distinct_4']:.3f}"),
        ("Self-BLEU-4 (lower: more diverse)", _fmt(pol["self_bleu_4"]), _fmt(ref["self_bleu_4"])),
        ("mean completion tokens", f"{pol['mean_tokens']:.1f}", f"{ref['mean_tokens']:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{report['prompts']} prompts x {report['samples_per_prompt']} samples, seed {report['seed']}"]
    lines.append(f"  {'':<{width}}  {'policy':>24}  {'reference':>24}")
    lines += [f"  {a:<{width}}  {b:>24}  {c:>24}" for a, b, c in rows]
    kl_note = "" if report["kl_unbiased"] else " (biased: samples are not from the policy's own distribution)"
    lines.append(f"  reward difference policy - reference: {interval(report['reward_difference'])}")
    lines.append(f"  win rate over the reference's samples: {report['win_rate']:.3f}")
    lines.append(f"  KL(policy || reference) per completion: {interval(report['kl'])} nats{kl_note}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
