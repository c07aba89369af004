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
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tidpo.eval.metrics import distinct_n, mean_and_ci, paired_difference, self_bleu, win_rate
from tidpo.files import write_text

logger = logging.getLogger("tidpo")

RewardFn = Callable[..., Sequence[float]]
CACHE_VERSION = 1


@dataclass
class SamplingSettings:
    """How completions are sampled. The defaults (temperature 1, no top-p/top-k) sample the model's own
    distribution, which the KL estimate needs."""

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    batch_size: int = 96

    def __post_init__(self) -> None:
        checks = (
            ("max_new_tokens", self.max_new_tokens >= 1, ">= 1"),
            ("temperature", self.temperature > 0 and math.isfinite(self.temperature), "> 0 and finite"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("top_k", self.top_k >= 0, ">= 0 (0: off)"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"sampling setting {name} must be {rule}, got {getattr(self, name)}")

    @property
    def exact(self) -> bool:
        """Samples come from the model's own distribution (temperature 1, no truncation)."""
        return self.temperature == 1.0 and self.top_p == 1.0 and self.top_k == 0


@dataclass
class Sample:
    """One completion: its prompt (and the prompt's index), the completion's token ids up to and including the
    first EOS, its text (special tokens dropped), and the sampling model's own scores of it."""

    prompt_index: int
    prompt: str
    token_ids: list[int]
    text: str
    logp: float = 0.0  # Σ_t log π(y_t | ...) under the model that sampled it
    entropy: float = 0.0  # mean over the completion's tokens of the model's entropy at that step
    reward: float = 0.0
    extra: dict = field(default_factory=dict)


def load_reward_fn(spec: str) -> RewardFn:
    """The function named ``module:function`` (e.g. ``tidpo.tasks.sentiment:reward``).

    Raises:
        ValueError: the name is not ``module:function``, the module cannot be imported, or it has no such callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"reward {spec!r} must be written module:function, e.g. tidpo.tasks.sentiment:reward")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"reward {spec!r}: cannot import module {module_name!r} ({err})") from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"reward {spec!r}: module {module_name!r} has no callable {attr!r}")
    problem = _signature_problem(fn)
    if problem is not None:
        raise ValueError(
            f"reward {spec!r}: {problem}; a reward is called as fn(prompts=[...], completions=[...]) and returns one "
            "number per completion (TRL's reward functions); add **kwargs for what it does not use"
        )
    return fn


def _signature_problem(fn) -> str | None:
    """Why ``fn(prompts=..., completions=...)`` cannot be called, or None (also when there is no signature)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and extension functions: called as they are
        return None
    params = list(signature.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        named = {"prompts", "completions"}
    else:
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [name for name in ("prompts", "completions") if name not in named]
    if missing:
        return f"its parameters {signature} do not take {' and '.join(f'{m}=' for m in missing)}"
    required = [
        p.name for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in ("prompts", "completions")
    ]  # fmt: skip
    if required:
        return f"its parameters {signature} also require {', '.join(required)}"
    return None


class RewardError(ValueError):
    """A reward function returned something other than one finite number per completion."""


def score_rewards(fn: RewardFn, prompts: list[str], completions: list[str], name: str = "reward") -> list[float]:
    """``fn(prompts=..., completions=...)``, checked: one finite number per completion.

    Raises:
        RewardError: a value count that differs from the completions', or a value that is no finite number.
    """
    values = fn(prompts=prompts, completions=completions)
    try:
        values = list(values)
    except TypeError as err:
        raise RewardError(f"{name} returned {type(values).__name__}, not a list of numbers") from err
    if len(values) != len(completions):
        raise RewardError(f"{name} returned {len(values)} values for {len(completions)} completions")
    numbers = []
    for i, value in enumerate(values):  # Python, numpy and one-element torch numbers; no strings or booleans
        try:
            number = None if isinstance(value, str | bytes | bool) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number):
            raise RewardError(f"{name} returned {value!r} for completion {i} ({completions[i]!r}): not a finite number")
        numbers.append(number)
    return numbers


@contextlib.contextmanager
def _left_padded_eval(model, tokenizer):
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        tokenizer.padding_side = side
        model.train(was_training)


@torch.no_grad()
def generate_samples(
    model, tokenizer, prompts: Sequence[str], n: int, settings: SamplingSettings, seed: int = 0
) -> list[Sample]:
    """``n`` completions per prompt, prompt-major (``n`` for prompt 0, then prompt 1, ...), batched with left
    padding. ``torch.manual_seed(seed)`` once before the first batch, so a run is reproducible."""
    from tqdm.auto import tqdm

    if n < 1:
        raise ValueError(f"samples per prompt must be >= 1, got {n}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: completions could not end")
    torch.manual_seed(seed)
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    samples: list[Sample] = []
    device = next(model.parameters()).device
    with _left_padded_eval(model, tokenizer):
        for start in tqdm(range(0, len(flat), settings.batch_size), desc="sampling", leave=False):
            chunk = flat[start : start + settings.batch_size]
            batch = tokenizer([p for _, p in chunk], return_tensors="pt", padding=True).to(device)
            out = model.generate(
                **batch,
                do_sample=True,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for (index, prompt), row in zip(chunk, out[:, batch["input_ids"].shape[1] :].tolist(), strict=True):
                ids = _until_eos(row, tokenizer.eos_token_id)
                samples.append(Sample(index, prompt, ids, tokenizer.decode(ids, skip_special_tokens=True)))
    return samples


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


@torch.no_grad()
def completion_scores(
    model, tokenizer, samples: Sequence[Sample], temperature: float = 1.0, batch_size: int = 32
) -> tuple[list[float], list[float]]:
    """``(Σ_t log p(y_t), mean_t H_t)`` of each sample's completion under ``model`` (teacher forcing, the logits
    divided by ``temperature`` as sampling did). ``H_t`` is the entropy (nats) of the model's distribution at
    completion step ``t``."""
    device = next(model.parameters()).device
    logps: list[float] = []
    entropies: list[float] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            prompt_ids = [tokenizer(s.prompt)["input_ids"] for s in chunk]
            rows = [p + s.token_ids for p, s in zip(prompt_ids, chunk, strict=True)]
            width = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            target = torch.zeros((len(rows), width), dtype=torch.bool)
            for i, (row, p) in enumerate(zip(rows, prompt_ids, strict=True)):
                input_ids[i, : len(row)] = torch.tensor(row)
                attention[i, : len(row)] = 1
                target[i, len(p) : len(row)] = True
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1] / temperature, dim=-1)
            mask = target[:, 1:].to(device)
            labels = input_ids[:, 1:].to(device)
            token_logp = logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
            entropy = -(logprobs.exp() * logprobs).sum(-1)
            for i in range(len(rows)):
                m = mask[i]
                count = int(m.sum())
                logps.append(float(token_logp[i][m].sum()))
                entropies.append(float(entropy[i][m].sum()) / count if count else 0.0)
    finally:
        model.train(was_training)
    for i, (lp, h) in enumerate(zip(logps, entropies, strict=True)):
        if not (math.isfinite(lp) and math.isfinite(h)):
            raise FloatingPointError(f"completion {i}: non-finite log-probability {lp} or entropy {h}")
    return logps, entropies


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
    logps, entropies = completion_scores(policy, tokenizer, samples, settings.temperature)
    with _as_reference(policy, reference) as ref:
        ref_logps, _ = completion_scores(ref, tokenizer, samples, settings.temperature)
    rewards = score_rewards(reward_fn, [s.prompt for s in samples], [s.text for s in samples])
    for s, lp, h, r, rlp in zip(samples, logps, entropies, rewards, ref_logps, strict=True):
        s.logp, s.entropy, s.reward = lp, h, r
        s.extra["kl"] = lp - rlp
    groups = [s.prompt_index for s in samples]
    boot = {"confidence": confidence, "groups": groups}

    def side(rows: list[Sample]) -> dict:
        return {
            "reward": mean_and_ci([s.reward for s in rows], **boot),
            "positive_fraction": sum(s.reward > 0.05 for s in rows) / len(rows),
            "entropy": sum(s.entropy for s in rows) / len(rows),
            **diversity(rows),
        }

    return {
        "prompts": len(prompts),
        "samples_per_prompt": n,
        "confidence": confidence,
        "seed": seed,
        "sampling": asdict(settings),
        "kl_unbiased": settings.exact,
        "reference_samples_cached": from_cache,
        "policy": side(samples),
        "reference": side(ref_samples),
        "reward_difference": paired_difference([s.reward for s in samples], [s.reward for s in ref_samples], **boot),
        "win_rate": win_rate([s.reward for s in samples], [s.reward for s in ref_samples]),
        "kl": mean_and_ci([s.extra["kl"] for s in samples], **boot),
        "samples": [
            {
                "prompt": s.prompt,
                "policy": s.text,
                "policy_reward": s.reward,
                "reference": r.text,
                "reference_reward": r.reward,
                "kl": s.extra["kl"],
            }
            for s, r in zip(samples, ref_samples, strict=True)
        ],
    }


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
