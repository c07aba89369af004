"""``TIDPOConfig``: the training arguments of TI-DPO (docs/method.md §5) on top of ``transformers.TrainingArguments``.

Fields left at ``None`` are filled from the preset (``confidence``, the default chosen by the study of
docs/results.md; ``paper``, the paper's table; or ``official``, the authors' code)
and then from ``baseline`` (DPO/TDPO1/TDPO2 in the same trainer by configuration alone). A value set explicitly
always wins over the preset; one that contradicts the baseline is an error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from transformers import TrainingArguments

from tidpo.importance.weights import ESTIMATORS, estimator_spec, needs_attribution, needs_weight_columns
from tidpo.losses.kl_modes import KL_MODE_TABLE
from tidpo.training.config_checks import resolve_method_fields
from tidpo.training.loss_options import LossOptions
from tidpo.training.presets import BASELINES, CHOICES, DEFAULT_PRESET, PRESETS
from tidpo.training.sequence_options import SequenceOptions

__all__ = ["BASELINES", "CHOICES", "PRESETS", "TIDPOConfig"]


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class TIDPOConfig(LossOptions, SequenceOptions, TrainingArguments):
    """Training arguments for :class:`~tidpo.TIDPOTrainer` (docs/method.md §5 names and defaults; TRL's loss
    options, :class:`~tidpo.training.loss_options.LossOptions`)."""

    preset: str = field(
        default=DEFAULT_PRESET,
        metadata=_help(
            "Defaults for unset fields: 'confidence' (the default: the paper's settings with the confidence "
            "estimator and no triplet term, chosen by the frontier study of docs/results.md), 'paper' (the paper's "
            "table, docs/method.md §5) or 'official' (the authors' code)."
        ),
    )
    baseline: str | None = field(
        default=None,
        metadata=_help("Run a baseline in this trainer: 'dpo', 'tdpo1' or 'tdpo2' (uniform weights, γ = 0)."),
    )
    beta: float | None = field(default=None, metadata=_help("β of Eq. 12 (paper 0.1, official 0.2)."))
    kl_mode: str | None = field(
        default=None,
        metadata=_help(
            "Sequential-KL term (docs/method.md §3): "
            + ", ".join(f"'{mode.name}' ({mode.help})" for mode in KL_MODE_TABLE.values())
            + "."
        ),
    )
    kl_weight: float | None = field(
        default=None,
        metadata=_help(
            "α, the TDPO KL weight (0.5"
            + "".join(f"; {m.fixed_weight:g} for {m.name}" for m in KL_MODE_TABLE.values() if m.fixed_weight)
            + ")."
        ),
    )
    triplet_weight: float | None = field(
        default=None, metadata=_help("γ of Eq. 14, weight of the triplet loss (paper 0.1, official 0.001; 0 = off).")
    )
    triplet_margin: float | None = field(
        default=None, metadata=_help("Margin of the triplet loss, Eq. 13 (paper preset 0.1, official 0.001).")
    )
    importance: str | None = field(
        default=None,
        metadata=_help(
            "Token-importance estimator: "
            + ", ".join(f"'{name}' ({spec.help})" for name, spec in ESTIMATORS.items())
            + " or 'custom' (pass importance_fn to the trainer). The columns hold one number >= 0 per response "
            "token, without the final EOS."
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
            "a model with a plain dynamic key/value cache. Default: on a CPU, on where all of that holds (else whole "
            "rows, and the routes line of the log says why); on a GPU, off (whole rows measured 1.8x faster per "
            "step on an H200, docs/performance.md); off with padding_free. True where it cannot be served is an "
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
    anchor_decode: str = field(
        default="auto",
        metadata=_help(
            "How the anchors' tokens are decoded: 'dynamic' (a growing key/value cache; generate's loop), 'static' "
            "(keys and values in fixed buffers, fixed shapes every token), 'graph' (static, each token's forward "
            "replayed as a CUDA graph: one launch per token); 'auto': graph on a GPU, dynamic on a CPU. Same draws "
            "under a seed."
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
            "Most tokens of prompt + response; longer rows keep the start (or the end: truncation_mode); with "
            "keep_start, pairs whose prompt fills it are dropped (logged)."
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
    router_aux_loss_coef: float | None = field(
        default=None,
        metadata=_help(
            "Weight of a mixture-of-experts model's router load-balancing loss, added to the loss (as TRL); "
            "None: the model config's router_aux_loss_coef (0 for a model without one)."
        ),
    )
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
                "precompute_ref_logps is deprecated; use precompute_ref_log_probs (TRL's name)",
                FutureWarning,
                stacklevel=3,
            )
            self.precompute_ref_log_probs = self.precompute_ref_log_probs or self.precompute_ref_logps
        if isinstance(self.model_init_kwargs, str):
            self.model_init_kwargs = _json_mapping("model_init_kwargs", self.model_init_kwargs)
        if self.model_init_kwargs is not None and not isinstance(self.model_init_kwargs, dict):
            raise ValueError(f"model_init_kwargs must be a mapping, got {type(self.model_init_kwargs).__name__}")
        resolve_method_fields(self)
        self.check_sequence_options()
        super().__post_init__()

    def from_pretrained_kwargs(self) -> dict:
        """The keyword arguments of ``from_pretrained`` for a model given by name: ``model_init_kwargs`` with
        ``trust_remote_code``, a dtype's short spelling (``bf16``) made torch's (``bfloat16``)."""
        from tidpo.hub import model_init_kwargs

        return model_init_kwargs(self.model_init_kwargs, trust_remote_code=self.trust_remote_code)

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
        """Whether a response's weights may all be 0: for an estimator that declares it can take such rows
        (``columns``), only when the Gaussian prior is mixed in (``λ < 1``), which then gives them their weights."""
        if self.importance == "custom":
            return False
        spec = estimator_spec(self.importance)
        return spec.zero_weight_rows and spec.effective_mix(self.importance_mix) < 1


def _json_mapping(name: str, text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{name} must be a JSON object such as \'{{"dtype": "bfloat16"}}\': {err}') from err
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {text!r}")
    return value
