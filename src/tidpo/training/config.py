"""``TIDPOConfig``: the training arguments of TI-DPO (docs/method.md §5) on top of ``transformers.TrainingArguments``.

Fields left at ``None`` are filled from the preset (``paper``, the default, or ``official``, the authors' code)
and then from ``baseline`` (DPO/TDPO1/TDPO2 in the same trainer by configuration alone). A value set explicitly
always wins over the preset; one that contradicts the baseline is an error.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from transformers import TrainingArguments

from tidpo.importance.attribution import ATTRIBUTION_TARGETS
from tidpo.importance.weights import ESTIMATORS, NORMS, SPANS, needs_attribution, needs_weight_columns
from tidpo.losses.dpo import KL_MODES

# docs/method.md §5 table. Deviation: "triplet_margin" 0.1 in the paper preset is tidpo's choice (the paper gives none).
PRESETS: dict[str, dict[str, object]] = {
    "paper": {
        "beta": 0.1,
        "kl_mode": "tdpo2",
        "kl_weight": 0.5,
        "triplet_weight": 0.1,
        "triplet_margin": 0.1,
        "importance": "hybrid",
        "importance_mix": 0.7,
        "prior_sigma_div": 4.0,
        "weight_span": "response",
    },
    "official": {
        "beta": 0.2,
        "kl_mode": "tdpo2",
        "kl_weight": 0.5,
        "triplet_weight": 0.001,
        "triplet_margin": 0.001,
        "importance": "hybrid",
        "importance_mix": 0.2,
        "prior_sigma_div": 8.0,
        "weight_span": "sequence",
    },
}
# docs/method.md §5 "Baselines in the same trainer, by configuration alone".
BASELINES: dict[str, dict[str, object]] = {
    "dpo": {"importance": "uniform", "kl_mode": "none", "triplet_weight": 0.0},
    "tdpo1": {"importance": "uniform", "kl_mode": "tdpo1", "triplet_weight": 0.0},
    "tdpo2": {"importance": "uniform", "kl_mode": "tdpo2", "triplet_weight": 0.0},
}
CHOICES = {
    "preset": tuple(PRESETS),
    "baseline": (None, *BASELINES),
    "kl_mode": KL_MODES,
    "importance": (*ESTIMATORS, "custom"),
    "weight_span": SPANS,
    "weight_norm": NORMS,
    "attribution": ("fused", "separate"),
    "attribution_target": ATTRIBUTION_TARGETS,
    "anchor_backward": ("auto", "deferred", "joint"),
    "on_nonfinite": ("raise", "skip"),
}


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class TIDPOConfig(TrainingArguments):
    """Training arguments for :class:`~tidpo.TIDPOTrainer` (docs/method.md §5 names and defaults)."""

    preset: str = field(
        default="paper", metadata=_help("Defaults for unset fields: 'paper' (docs/method.md §5) or 'official'.")
    )
    baseline: str | None = field(
        default=None,
        metadata=_help("Run a baseline in this trainer: 'dpo', 'tdpo1' or 'tdpo2' (uniform weights, γ = 0)."),
    )
    beta: float | None = field(default=None, metadata=_help("β of Eq. 12 (paper 0.1, official 0.2)."))
    kl_mode: str | None = field(
        default=None,
        metadata=_help(
            "Sequential-KL term (docs/method.md §3): 'tdpo2' (default), 'tdpo1' (α = 1, no stop-gradient), 'none'."
        ),
    )
    kl_weight: float | None = field(default=None, metadata=_help("α, the TDPO KL weight (0.5; 1 for tdpo1)."))
    triplet_weight: float | None = field(
        default=None, metadata=_help("γ of Eq. 14, weight of the triplet loss (paper 0.1, official 0.001; 0 = off).")
    )
    triplet_margin: float | None = field(
        default=None, metadata=_help("Margin of the triplet loss, Eq. 13 (paper preset 0.1, official 0.001).")
    )
    importance: str | None = field(
        default=None,
        metadata=_help(
            "Token-importance estimator: 'hybrid' (Eq. 8), 'gradient' (λ = 1), 'prior' (λ = 0), 'uniform' (DPO), "
            "'random' (ablation), 'columns' (Eq. 8 with the dataset's chosen_weights/rejected_weights as the scores), "
            "'columns_raw' (those columns are the weights, as they are) or 'custom' (pass importance_fn to the "
            "trainer). The columns hold one number >= 0 per response token, without the final EOS."
        ),
    )
    importance_mix: float | None = field(
        default=None, metadata=_help("λ of Eq. 8: weight of the gradient attribution against the prior (0.7 / 0.2).")
    )
    prior_sigma_div: float | None = field(
        default=None, metadata=_help("σ = T / prior_sigma_div in the Gaussian prior, Eq. 7 (paper 4, official 8).")
    )
    weight_span: str | None = field(
        default=None, metadata=_help("Span the weights are built over: 'response' (paper) or 'sequence' (official).")
    )
    weight_norm: str = field(
        default="mean", metadata=_help("Rescale token weights to mean 1 ('mean') or sum 1 ('sum') over the response.")
    )
    attribution: str = field(
        default="fused",
        metadata=_help(
            "'fused': attribution gradient from the training forward's own graph; 'separate': a second forward."
        ),
    )
    attribution_target: str = field(
        default="max_logit",
        metadata=_help(
            "What the gradient attribution differentiates: 'max_logit' (Eq. 5, the largest logit at the response's "
            "EOS; the paper) or 'response_logp' (the log-probability of the response's own tokens; beyond the "
            "paper, see docs/method.md)."
        ),
    )
    chunked_logits: bool | None = field(
        default=None,
        metadata=_help(
            "Take log-probs and KL from the final hidden states at the response tokens, in chunks, never "
            "building (rows, length, vocab) logits. Default: on where the output layer is a plain bias-free linear "
            "map, else full logits (the routes line of the log says why); True where it cannot be served is an "
            "error. Same numbers either way."
        ),
    )
    logits_chunk_size: int = field(default=1024, metadata=_help("Response tokens per chunk with chunked_logits."))
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata=_help(
            "Score the data with the reference once before training (cached on disk, keyed by the tokenised data, "
            "max_length and the reference's weights) and read per-token reference log-probs from the batch instead "
            "of running the reference every step. Only when nothing else needs it: kl_mode='none' and "
            "triplet_weight=0. (TRL's name; `precompute_ref_logps` is its deprecated alias.)"
        ),
    )
    precompute_ref_logps: bool | None = field(
        default=None, metadata=_help("Deprecated: the old name of precompute_ref_log_probs (removed in 0.3).")
    )
    share_prompt: bool | None = field(
        default=None,
        metadata=_help(
            "Run each pair's prompt once for both responses and the anchor (they continue from its key/value cache, "
            "gradients included). Needs the chunked head, no gradient checkpointing, PreferenceCollator's batches and "
            "a model with a plain dynamic key/value cache. Default: on where all of that holds (else whole rows, "
            "and the routes line of the log says why), off with padding_free; True where it cannot be served is an "
            "error. Same numbers either way."
        ),
    )
    padding_free: bool = field(
        default=False,
        metadata=_help(
            "Run each forward's sequences packed end to end without their padding (position_ids restart at each "
            "sequence), so padding costs no compute. Whole rows only, so it turns share_prompt off. Checked before "
            "training: the model's attention must keep packed sequences apart (transformers' SDPA, eager, flex and "
            "FlashAttention-2 paths do for Llama-family models). Same numbers either way."
        ),
    )
    anchor_backward: str = field(
        default="auto",
        metadata=_help(
            "'joint': one backward through the main and the anchors' graphs; 'deferred': score the anchors without a "
            "graph, backpropagate the main loss, then rebuild the anchors' graph and backpropagate it alone (lower "
            "peak memory, one more anchor forward); 'auto': joint when prompts are shared (the anchors' graph is then "
            "only their own tokens), else deferred. Same gradients."
        ),
    )
    anchor_max_new_tokens: int = field(
        default=64, metadata=_help("Anchor sampling: most new tokens (docs/method.md §4).")
    )
    anchor_temperature: float = field(default=0.8, metadata=_help("Anchor sampling temperature."))
    anchor_top_k: int = field(default=50, metadata=_help("Anchor sampling top-k."))
    anchor_top_p: float = field(default=0.95, metadata=_help("Anchor sampling top-p."))
    max_length: int | None = field(
        default=1024,
        metadata=_help(
            "Most tokens of prompt + response; longer rows keep the start; pairs whose prompt fills it "
            "are dropped (logged)."
        ),
    )
    on_nonfinite: str = field(
        default="raise",
        metadata=_help(
            "A NaN or Inf in the loss, the token weights, the attributions or the gradient norm, found before the "
            "optimiser step (every process agrees): 'raise' stops with the step, the pairs' rows and the quantity; "
            "'skip' drops that update (logged as skipped_updates) and stops after max_nonfinite_skips in a row."
        ),
    )
    max_nonfinite_skips: int = field(
        default=3, metadata=_help("With on_nonfinite='skip': consecutive skipped updates before the run stops.")
    )
    eval_importance: bool = field(
        default=False,
        metadata=_help(
            "At evaluation, also compute token weights and anchors (full objective). Off: uniform "
            "weights and no triplet term, so evaluation costs one forward per model."
        ),
    )
    eval_group_by_length: bool = field(
        default=True,
        metadata=_help(
            "At evaluation, run the pairs longest first (by prompt + longer response, after max_length), so each "
            "batch holds rows of similar length and little padding. The metrics are per-pair averages: the order "
            "does not change them."
        ),
    )
    disable_dropout: bool = field(default=True, metadata=_help("Turn dropout off in the policy and the reference."))
    model_init_kwargs: dict | str | None = field(
        default=None,
        metadata=_help(
            "Keyword arguments of AutoModelForCausalLM.from_pretrained when the model (or ref_model) is given as a "
            "name, a folder or a Hub id, e.g. {'dtype': 'bfloat16', 'attn_implementation': 'sdpa'} (a JSON string on "
            "the command line). The reference is loaded with the same settings."
        ),
    )
    trust_remote_code: bool = field(
        default=False,
        metadata=_help("Allow models and tokenizers from the Hub that ship their own Python code (off: never run)."),
    )
    dataset_num_proc: int | None = field(default=None, metadata=_help("Processes for dataset tokenisation."))
    # TrainingArguments defaults changed for preference training (as TRL does).
    learning_rate: float = field(default=1e-6, metadata=_help("Initial learning rate (AdamW)."))
    logging_steps: float = field(default=10, metadata=_help("Log every N steps (or a ratio of the total)."))
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata=_help(
            "DDP's find_unused_parameters. False: every trainable parameter gets a gradient in every step (the "
            "chunked head uses the output layer outside the forward, which DDP's search would take for unused)."
        ),
    )
    remove_unused_columns: bool = field(
        default=False, metadata=_help("Kept False: the preference columns are not model-forward arguments.")
    )

    def __post_init__(self):
        if self.precompute_ref_logps is not None:
            warnings.warn(
                "precompute_ref_logps is deprecated; use precompute_ref_log_probs (TRL's name)", FutureWarning,
                stacklevel=3,
            )  # fmt: skip
            self.precompute_ref_log_probs = self.precompute_ref_log_probs or self.precompute_ref_logps
        if isinstance(self.model_init_kwargs, str):
            self.model_init_kwargs = _json_mapping("model_init_kwargs", self.model_init_kwargs)
        if self.model_init_kwargs is not None and not isinstance(self.model_init_kwargs, dict):
            raise ValueError(f"model_init_kwargs must be a mapping, got {type(self.model_init_kwargs).__name__}")
        self._resolve_method_fields()
        super().__post_init__()

    def from_pretrained_kwargs(self) -> dict:
        """The keyword arguments of ``from_pretrained`` for a model given by name: ``model_init_kwargs`` with
        ``trust_remote_code``, a dtype's short spelling (``bf16``) made torch's (``bfloat16``)."""
        from tidpo.hub import model_init_kwargs

        return model_init_kwargs(self.model_init_kwargs, trust_remote_code=self.trust_remote_code)

    def _resolve_method_fields(self) -> None:
        for name in ("preset", "baseline", "weight_norm", "attribution", "attribution_target", "anchor_backward"):
            _check_choice(name, getattr(self, name))
        for name, value in BASELINES.get(self.baseline, {}).items():
            current = getattr(self, name)
            if current is not None and current != value:
                raise ValueError(
                    f"baseline={self.baseline!r} sets {name}={value!r}, but {name}={current!r} was given; "
                    f"drop one of them"
                )
            setattr(self, name, value)
        if self.kl_mode is not None:
            _check_choice("kl_mode", self.kl_mode)
            implied = {"tdpo1": 1.0, "none": 0.0}.get(self.kl_mode)
            if implied is not None and self.kl_weight not in (None, implied):
                raise ValueError(f"kl_mode={self.kl_mode!r} fixes kl_weight={implied}, got kl_weight={self.kl_weight}")
            if implied is not None:
                self.kl_weight = implied
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("kl_mode", "importance", "weight_span"):
            _check_choice(name, getattr(self, name))
        self._check_ranges()

    def _check_ranges(self) -> None:
        numbers = ("beta", "kl_weight", "triplet_weight", "triplet_margin", "importance_mix", "prior_sigma_div",
                   "anchor_temperature", "anchor_top_p", "learning_rate")  # fmt: skip
        for name in numbers:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        _check_choice("on_nonfinite", self.on_nonfinite)
        if self.fp16 and not _has_accelerator(self.use_cpu):
            raise ValueError("fp16 needs a GPU (or another accelerator); on a CPU drop --fp16 (bf16 runs on a CPU)")
        checks = [
            ("max_nonfinite_skips", self.max_nonfinite_skips >= 0, ">= 0"),
            ("beta", self.beta > 0, "> 0"),
            ("kl_weight", self.kl_weight >= 0, ">= 0"),
            ("triplet_weight", self.triplet_weight >= 0, ">= 0"),
            ("triplet_margin", self.triplet_margin >= 0, ">= 0"),
            ("importance_mix", 0 <= self.importance_mix <= 1, "in [0, 1]"),
            ("prior_sigma_div", self.prior_sigma_div > 0, "> 0"),
            ("anchor_max_new_tokens", self.anchor_max_new_tokens >= 1, ">= 1"),
            ("anchor_temperature", self.anchor_temperature > 0, "> 0"),
            ("anchor_top_p", 0 < self.anchor_top_p <= 1, "in (0, 1]"),
            ("max_length", self.max_length is None or self.max_length >= 2, ">= 2 or None"),
            ("logits_chunk_size", self.logits_chunk_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate >= 0, ">= 0"),
            ("per_device_train_batch_size", self.per_device_train_batch_size >= 1, ">= 1"),
            ("per_device_eval_batch_size", self.per_device_eval_batch_size >= 1, ">= 1"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, ">= 1"),
            ("seed", 0 <= self.seed < 2**32, "in [0, 2**32 - 1] (numpy's seeds)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if self.padding_free and self.share_prompt:
            raise ValueError(
                "padding_free packs whole rows, while share_prompt=True runs each prompt once and continues it row by "
                "row; drop one of them"
            )
        if self.precompute_ref_log_probs and (self.kl_weight > 0 or self.triplet_weight > 0):
            raise ValueError(
                "precompute_ref_log_probs needs a step that uses the reference only for the dataset's own tokens: "
                f"kl_mode='none' and triplet_weight=0 (got kl_mode={self.kl_mode!r}, kl_weight={self.kl_weight}, "
                f"triplet_weight={self.triplet_weight}); the KL needs its full distribution and anchors are new "
                "every step"
            )

    @property
    def needs_attribution(self) -> bool:
        """Whether the weights use the gradient attribution (so a backward to the embeddings is needed)."""
        return self.importance != "custom" and needs_attribution(self.importance, self.importance_mix)

    @property
    def needs_weight_columns(self) -> bool:
        """Whether the weights come from the dataset's ``chosen_weights`` / ``rejected_weights`` columns."""
        return self.importance != "custom" and needs_weight_columns(self.importance)

    @property
    def allows_zero_weight_rows(self) -> bool:
        """Whether a response's column weights may all be 0: only when the Gaussian prior is mixed in
        (``importance="columns"`` with ``importance_mix < 1``), which then gives it its weights."""
        return self.importance == "columns" and self.importance_mix < 1


def _json_mapping(name: str, text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{name} must be a JSON object such as \'{{"dtype": "bfloat16"}}\': {err}') from err
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {text!r}")
    return value


def _check_choice(name: str, value) -> None:
    if value not in CHOICES[name]:
        allowed = ", ".join(repr(c) for c in CHOICES[name])
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def _has_accelerator(use_cpu: bool) -> bool:
    """Whether training will run on something other than the CPU."""
    import torch

    if use_cpu:
        return False
    backends = (torch.cuda, getattr(torch, "xpu", None), getattr(torch.backends, "mps", None))
    return any(b is not None and b.is_available() for b in backends)
