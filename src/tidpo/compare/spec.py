"""The study file of ``tidpo compare``: one YAML mapping naming the model, the data, the reward, the methods, the
seeds, the checkpoint steps and the KL budgets (docs/compare.md lists every key).

Everything is checked before any training: unknown keys are refused, each value's type and range, and each
method's ``TIDPOConfig`` (the recipe with the method's overrides on top) is built once, so a typo in the last
method does not surface hours into the study. Every error is one line naming the key and the fix.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from tidpo.compare.checks import Checker, SpecError, local

DEMO_REWARD = "tidpo.tasks.sentiment:reward"
REWARD_ALIASES = {"vader": DEMO_REWARD}
LORA_KEYS = ("use_lora", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
# TIDPOConfig fields compare sets itself, with where their value comes from
CONTROLLED = {
    "output_dir": "the run folders under the output",
    "max_steps": "the last of `checkpoints`",
    "seed": "`seeds`",
    "save_strategy": "`checkpoints`",
    "save_steps": "`checkpoints`",
    "save_total_limit": "`checkpoints` (every one is kept)",
    "resume_from_checkpoint": "the run folder (an unfinished run resumes by itself)",
}
REQUIRED = ("model", "train", "prompts", "reward", "methods", "seeds", "checkpoints", "budgets")
OPTIONAL = {
    "recipe": {},
    "baseline": None,
    "train_pairs": None,
    "samples": 4,
    "sample_seed": 1234,
    "max_new_tokens": 32,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "sample_batch_size": 96,
    "bootstrap": 2000,
    "bootstrap_seed": 0,
    "output": None,
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass
class Method:
    """One method of the study: its name (its runs' folder prefix), its label in the report, its overrides."""

    name: str
    overrides: dict
    label: str


@dataclass
class CompareSpec:
    """A checked study file (the keys of docs/compare.md); relative paths are taken from the file's folder."""

    model: str
    train: str
    prompts: str
    reward: str
    methods: list[Method]
    seeds: list[int]
    checkpoints: list[int]
    budgets: list[float]
    recipe: dict = field(default_factory=dict)
    baseline: str | None = None
    train_pairs: int | None = None
    samples: int = 4
    sample_seed: int = 1234
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    sample_batch_size: int = 96
    bootstrap: int = 2000
    bootstrap_seed: int = 0
    output: str | None = None

    def method(self, name: str) -> Method:
        return next(m for m in self.methods if m.name == name)

    def sampling(self):
        """The :class:`~tidpo.eval.generation.SamplingSettings` of the evaluation."""
        from tidpo.eval.generation import SamplingSettings

        return SamplingSettings(self.max_new_tokens, self.temperature, self.top_p, self.top_k, self.sample_batch_size)

    def lora(self, method: Method) -> dict:
        """The LoRA settings of ``method``'s runs (recipe, then the method's): empty without ``use_lora``."""
        merged = {**self.recipe, **method.overrides}
        settings = {k: merged[k] for k in LORA_KEYS if k in merged}
        return settings if settings.get("use_lora") else {}

    def training_settings(self, method: Method, seed: int, output_dir: str) -> dict:
        """The ``TIDPOConfig`` keyword arguments of one run: the recipe, the method's overrides, then what compare
        controls (steps, seed, checkpoints, no Hub or logging services)."""
        merged = {**self.recipe, **method.overrides}
        settings = {k: v for k, v in merged.items() if k not in LORA_KEYS}
        settings.setdefault("report_to", "none")
        settings.setdefault("logging_steps", 1)
        controlled = {"output_dir": output_dir, "max_steps": self.checkpoints[-1], "seed": seed}
        return {**settings, **controlled, "save_strategy": "no", "save_total_limit": None, "disable_tqdm": True}


def load_spec(path: str | Path) -> CompareSpec:
    """Read and check the study file ``path`` (see :func:`parse_spec`)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file; give the study's YAML file (e.g. examples/compare-sentiment.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err
    return parse_spec(data, where=str(path), base=path.parent)


def parse_spec(data, where: str = "spec", base: Path | None = None) -> CompareSpec:
    """Check the mapping ``data`` and build the spec; relative paths that exist under ``base`` are taken there.

    Raises:
        SpecError: an unknown or missing key, a value of the wrong type or range, or a method whose settings do not
            make a valid ``TIDPOConfig``.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping of keys (model, train, prompts, ...), got {type(data).__name__}")
    _check_keys(data, where)
    values = {**OPTIONAL, **data}
    check = Checker(where)
    spec = CompareSpec(
        model=local(check.text(values, "model"), base),
        train=local(check.text(values, "train"), base),
        prompts=_prompts(check, values, base),
        reward=_reward(check, values),
        methods=_methods(check, values),
        seeds=check.int_list(values, "seeds", minimum=0, increasing=False),
        checkpoints=check.int_list(values, "checkpoints", minimum=1, increasing=True),
        budgets=check.budgets(values),
        recipe=check.mapping(values, "recipe"),
        **{key: check.count(values, key) for key in ("samples", "max_new_tokens", "sample_batch_size", "bootstrap")},
        **{key: check.integer(values, key) for key in ("sample_seed", "bootstrap_seed", "top_k")},
        temperature=check.number(values, "temperature"),
        top_p=check.number(values, "top_p"),
        train_pairs=None if values["train_pairs"] is None else check.count(values, "train_pairs"),
        baseline=values["baseline"],
        output=None if values["output"] is None else local(check.text(values, "output"), base, must_exist=False),
    )
    _check_baseline(spec, where)
    _check_sampling(spec, where)
    _check_settings(spec, where)
    return spec


def _check_keys(data: dict, where: str) -> None:
    known = [*REQUIRED, *OPTIONAL]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(known)}"
            raise SpecError(f"{where}: unknown key {key!r}; {hint}")
    for key in REQUIRED:
        if key not in data:
            raise SpecError(f"{where}: key {key!r} is missing; docs/compare.md shows an example")


def _prompts(check: Checker, values: dict, base: Path | None) -> str:
    prompts = local(check.text(values, "prompts"), base)
    if prompts != "demo" and not Path(prompts).is_file():
        raise check.fail("prompts", "expected 'demo' or a .txt/.json/.jsonl file of prompts that exists", prompts)
    return prompts


def _reward(check: Checker, values: dict) -> str:
    from tidpo.eval.generation import load_reward_fn

    spec = REWARD_ALIASES.get(check.text(values, "reward"), values["reward"])
    try:
        load_reward_fn(spec)
    except ValueError as err:
        raise SpecError(f"{check.where}: key 'reward': {err} ('vader' is the built-in one)") from err
    return spec


def _methods(check: Checker, values: dict) -> list[Method]:
    methods = values["methods"]
    if not isinstance(methods, dict) or not methods:
        raise check.fail("methods", "expected a mapping of method name -> TIDPOConfig overrides", methods)
    out = []
    for name, overrides in methods.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise check.fail("methods", "method names must be letters, digits, '_', '.', '+' or '-'", name)
        overrides = check.mapping({f"methods.{name}": overrides}, f"methods.{name}")
        label = overrides.pop("label", name)
        out.append(Method(name, overrides, str(label)))
    return out


def _check_baseline(spec: CompareSpec, where: str) -> None:
    names = [m.name for m in spec.methods]
    if spec.baseline is not None and spec.baseline not in names:
        raise SpecError(f"{where}: key 'baseline': {spec.baseline!r} is not a method; give one of {', '.join(names)}")


def _check_sampling(spec: CompareSpec, where: str) -> None:
    try:
        spec.sampling()
    except ValueError as err:  # "sampling setting top_p must be in (0, 1], got 2"
        key = str(err).split()[2]
        raise SpecError(f"{where}: key {key!r}: {err}") from err


def _check_settings(spec: CompareSpec, where: str) -> None:
    """Each method's ``TIDPOConfig``, built once here: unknown names, values compare controls, invalid values."""
    from tidpo.training.config import TIDPOConfig

    known = {f.name for f in fields(TIDPOConfig) if f.init} | set(LORA_KEYS)
    with tempfile.TemporaryDirectory(prefix="tidpo-compare-check-") as scratch:
        for method in spec.methods:
            for origin, settings in (("recipe", spec.recipe), (f"methods.{method.name}", method.overrides)):
                _check_names(settings, known, origin, where)
            try:
                TIDPOConfig(**spec.training_settings(method, spec.seeds[0], scratch))
            except (ValueError, TypeError) as err:
                raise SpecError(f"{where}: methods.{method.name}: {' '.join(str(err).split())}") from err


def _check_names(settings: dict, known: set, origin: str, where: str) -> None:
    for key in settings:
        if key in CONTROLLED:
            raise SpecError(f"{where}: {origin}.{key} is set by compare from {CONTROLLED[key]}; remove it")
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"{where}: {origin}.{key} is not a TIDPOConfig or LoRA setting{hint}")
