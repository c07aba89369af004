"""Reward functions for the generation metrics: named ``module:function``, called as
``fn(prompts=[...], completions=[...])`` and returning one finite number per completion (TRL's convention).

:func:`load_reward_fn` checks the name and the signature before any model is loaded; :func:`score_rewards` checks
what the function returns.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence

RewardFn = Callable[..., Sequence[float]]
_NAMED = ("prompts", "completions")


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
        named = set(_NAMED)
    else:
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [name for name in _NAMED if name not in named]
    if missing:
        return f"its parameters {signature} do not take {' and '.join(f'{m}=' for m in missing)}"
    required = _other_required(params)
    if required:
        return f"its parameters {signature} also require {', '.join(required)}"
    return None


def _other_required(params: list[inspect.Parameter]) -> list[str]:
    """Parameters other than ``prompts`` and ``completions`` that have no default (``*args``/``**kwargs`` aside)."""
    return [
        p.name
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in _NAMED
    ]


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
