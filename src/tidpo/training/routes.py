"""Engineering routes, resolved once before training: which head, layout, attribution, reference, anchor
backward and anchor decode the steps use.

Every route has a naive twin that gives the same numbers (tested, route by route and in a matrix of all valid
combinations): full logits for the chunked head, padded whole rows for packed rows and the shared prompt, a
separate forward for the fused attribution, the live reference for the cached one, the joint anchor backward for
the deferred one, the dynamic decode for the static and graph ones.

:func:`resolve_routes` reads the config and probes the models once; the result, :class:`Routes`, is frozen and
logged in one line by the trainer. A fast route the user *asked for* that cannot be served raises, with the option,
the reason and the fix; only a route left at its default falls back, and the reason is recorded. Nothing switches
a route during training. :func:`build_steps` then builds the small objects the training step calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from tidpo.importance.targets import TARGETS
from tidpo.training.anchors import AnchorStep, DeferredBackward, JointBackward, NoAnchors
from tidpo.training.decode import graph_problem, static_decode_problem
from tidpo.training.head import ChunkedHead, FullLogitsHead, chunked_head_problem
from tidpo.training.layouts import PackedRows, PaddedRows
from tidpo.training.moe import router_coefficient
from tidpo.training.packing import packing_problem
from tidpo.training.prompt_cache import sharing_problem
from tidpo.training.reference import CachedReference, LiveReference
from tidpo.training.shared_layout import SharedPrompt
from tidpo.training.weighting import FusedAttribution, NoAttribution, SeparateAttribution, TokenWeighting

HEADS = ("chunked", "full logits")
LAYOUTS = ("whole rows", "packed rows", "shared prompt")
ATTRIBUTIONS = ("fused", "separate", "none")
REFERENCES = ("live", "cached")
ANCHOR_BACKWARDS = ("joint", "deferred", "none")
ANCHOR_DECODES = ("graph", "static", "dynamic", "none")


@dataclass(frozen=True)
class Routes:
    """The routes of every training step, and why each default that left the fast route did so."""

    head: str
    layout: str
    attribution: str
    reference: str
    anchor_backward: str
    fallbacks: tuple[str, ...] = ()
    anchor_decode: str = "none"

    def __post_init__(self):
        allowed = {
            "head": HEADS,
            "layout": LAYOUTS,
            "attribution": ATTRIBUTIONS,
            "reference": REFERENCES,
            "anchor_backward": ANCHOR_BACKWARDS,
            "anchor_decode": ANCHOR_DECODES,
        }
        for name, values in allowed.items():
            if getattr(self, name) not in values:
                raise ValueError(f"Routes.{name}={getattr(self, name)!r} is not one of {values}")

    def __str__(self) -> str:
        line = (
            f"head={self.head}, layout={self.layout}, attribution={self.attribution}, reference={self.reference}, "
            f"anchor_backward={self.anchor_backward}, anchor_decode={self.anchor_decode}"
        )
        return line + (f" (fell back: {'; '.join(self.fallbacks)})" if self.fallbacks else "")


class RouteError(ValueError):
    """An engineering option the user set cannot be served by these models and settings."""


class _Resolution:
    """Collects the fallbacks of defaults; raises for explicit options that cannot be served."""

    def __init__(self):
        self.fallbacks: list[str] = []

    def refuse(self, option: str, explicit: bool, problem: str | None, fix: str, value: str = "True") -> bool:
        """True when ``option`` can be served; a problem raises if the user set it, else records a fallback."""
        if problem is None:
            return True
        if explicit:
            raise RouteError(f"{option}={value} cannot be served: {problem}; {fix}")
        self.fallbacks.append(f"{option}: {problem}")
        return False


def _first_problem(checks: list[Callable[[], str | None]]) -> str | None:
    """The first problem the checks find (each returns a message or None); later checks do not run."""
    for check in checks:
        problem = check()
        if problem is not None:
            return problem
    return None


def _model_checks(models: dict[str, nn.Module], probe: Callable[[nn.Module], str | None]):
    return [lambda n=n, m=m: None if (p := probe(m)) is None else f"the {n}: {p}" for n, m in models.items()]


def resolve_routes(
    args, models: dict[str, nn.Module], collator_problem: Callable[[], str | None], sharded_by: str | None = None
) -> Routes:
    """The routes for ``args`` (a :class:`~tidpo.TIDPOConfig`) and ``models`` (name → unwrapped module: the policy,
    and the reference when it is a separate module). ``collator_problem()`` says why the data collator's batches
    cannot be split into shared prompts (None when they can); ``sharded_by`` names the engine that shards the
    parameters (FSDP, ZeRO-3; :func:`tidpo.training.distributed.sharding_engine`), if any."""
    resolution = _Resolution()
    chunked = _chunked_head(args, models, sharded_by, resolution)
    layout = _layout(args, models, chunked, collator_problem, resolution)
    deferred = args.anchor_backward == "deferred" or (args.anchor_backward == "auto" and layout != "shared prompt")
    decode = "none" if args.triplet_weight == 0 else _anchor_decode(args, models["policy"], sharded_by, resolution)
    return Routes(
        head="chunked" if chunked else "full logits",
        layout=layout,
        attribution=args.attribution if args.needs_attribution else "none",
        reference="cached" if args.precompute_ref_log_probs else "live",
        anchor_backward="none" if args.triplet_weight == 0 else ("deferred" if deferred else "joint"),
        fallbacks=tuple(resolution.fallbacks),
        anchor_decode=decode,
    )


def _chunked_head(args, models, sharded_by: str | None, resolution: _Resolution) -> bool:
    """Whether the chunked head serves (``chunked_logits``)."""
    sharded = (
        None
        if sharded_by is None
        else f"{sharded_by} shards the output layer's weight, which the chunked head multiplies outside the layer's "
        "forward"
    )
    checks = [
        lambda: sharded,
        lambda: _unused_head_problem(args, models["policy"]),
        *_model_checks(models, chunked_head_problem),
    ]
    return args.chunked_logits is not False and resolution.refuse(
        "chunked_logits", args.chunked_logits is True, _first_problem(checks), "set chunked_logits=False"
    )


def _layout(args, models, chunked: bool, collator_problem, resolution: _Resolution) -> str:
    """Packed rows (``padding_free``, refused when a model cannot run them), the shared prompt, or whole rows."""
    if args.padding_free:
        for name, model in models.items():
            problem = packing_problem(model)
            if problem is not None:
                raise RouteError(f"padding_free: the {name} cannot run packed rows: {problem}")
        return "packed rows"
    if args.share_prompt is False or (args.share_prompt is None and _on_gpu(models["policy"])):
        return "whole rows"  # on a GPU a choice, not a fallback: see _on_gpu
    checks = [
        lambda: None if chunked else "it needs the chunked head (chunked_logits)",
        lambda: "gradient checkpointing turns the key/value cache off" if args.gradient_checkpointing else None,
        lambda: (
            "truncation_mode='keep_end' cuts each row's prompt on its own"
            if args.truncation_mode == "keep_end"
            else None
        ),
        lambda: (
            f"attribution_target={args.attribution_target!r} runs on whole rows"
            if args.needs_attribution and not TARGETS[args.attribution_target].shares_prompt
            else None
        ),
        collator_problem,
        lambda: _router_problem(args, models["policy"]),
        *_model_checks(models, sharing_problem),
    ]
    fix = "set share_prompt=False (or leave it unset to fall back to whole rows)"
    served = resolution.refuse("share_prompt", args.share_prompt is True, _first_problem(checks), fix)
    return "shared prompt" if served else "whole rows"


def _on_gpu(policy: nn.Module) -> bool:
    """Where ``share_prompt`` left unset means whole rows and ``anchor_decode='auto'`` the CUDA graph. On an H200
    the shared prompt made the DPO step slower, not faster (0.406 s against 0.224 s with whole rows, Qwen2.5-0.5B's
    shape, 256 + 768 tokens: benchmarks/results/gpu-h200-2026-12-04b); on a CPU it saves the prompt's second pass."""
    return policy.get_input_embeddings().weight.device.type == "cuda"


def _router_problem(args, policy: nn.Module) -> str | None:
    """A mixture-of-experts load-balancing loss counts every row's tokens, prompts included (tidpo.training.moe)."""
    if router_coefficient(args, policy) == 0.0:
        return None
    return "the router's load-balancing loss (router_aux_loss_coef) is over whole rows, as in TRL"


def _anchor_decode(args, policy: nn.Module, sharded_by: str | None, resolution: _Resolution) -> str:
    """``graph`` on a GPU and ``dynamic`` on a CPU when left at ``auto`` (on a CPU a launch costs nothing and there
    are no graphs: a choice, not a fallback); an explicit ``static`` or ``graph`` is probed and refused if it
    cannot be served."""
    asked = args.anchor_decode
    if asked == "dynamic" or (asked == "auto" and not _on_gpu(policy)):
        return "dynamic"
    wanted = "static" if asked == "static" else "graph"
    checks = [
        lambda: None if sharded_by is None else f"{sharded_by} gathers the parameters afresh for every forward",
        lambda: graph_problem(policy) if wanted == "graph" else None,
        lambda: static_decode_problem(policy),
    ]
    fix = "set anchor_decode='dynamic' (or leave it at 'auto')"
    served = resolution.refuse("anchor_decode", asked != "auto", _first_problem(checks), fix, repr(asked))
    return wanted if served else "dynamic"


def _unused_head_problem(args, policy: nn.Module) -> str | None:
    """DDP's search for unused parameters starts from the forward's output, which the chunked head's output layer
    is not part of: a trainable, untied head weight would be marked ready twice in one backward."""
    head, embedding = policy.get_output_embeddings(), policy.get_input_embeddings()
    trainable = head is not None and head.weight.requires_grad and head.weight is not embedding.weight
    if args.ddp_find_unused_parameters and args.world_size > 1 and trainable:
        return "with ddp_find_unused_parameters=True, DDP takes the output layer's weight for unused"
    return None


@dataclass(frozen=True)
class StepPolicies:
    """What one step calls, for one mode (train or eval)."""

    attribution: NoAttribution | FusedAttribution
    weighting: TokenWeighting
    anchors: AnchorStep | NoAnchors
    triplet_weight: float


@dataclass(frozen=True)
class Engine:
    """The route objects of a trainer: head, layout and reference (shared by both modes), the live reference
    (also used to precompute a cached one) and the step policies of each mode."""

    head: FullLogitsHead
    layout: PaddedRows
    reference: LiveReference
    live_reference: LiveReference
    steps: dict[str, StepPolicies]


def build_engine(
    routes: Routes, args, ref_model, unwrap, generation_config, importance_fn=None, workspace=None, sampling=None
):
    """The objects of ``routes`` for ``args``; ``ref_model`` is the explicit reference (None: the PEFT policy with
    its adapters disabled); ``sampling`` is the context of each anchor draw (see
    :class:`tidpo.training.distributed.AnchorSampling`)."""
    head, layout = _head_and_layout(routes, args, unwrap, workspace)
    live = LiveReference(ref_model, layout)
    reference = CachedReference(layout) if routes.reference == "cached" else live
    attribution = {"fused": FusedAttribution, "separate": SeparateAttribution}.get(routes.attribution)
    estimator = importance_fn if args.importance == "custom" else args.importance
    weighting = TokenWeighting(estimator, args.importance_mix, args.prior_sigma_div, args.weight_span, args.weight_norm)

    def anchors(backward):
        if routes.anchor_backward == "none":
            return NoAnchors()
        return AnchorStep(
            layout, live, generation_config, args.triplet_margin, backward, sampling, routes.anchor_decode
        )

    train = StepPolicies(
        attribution(layout, TARGETS[args.attribution_target]) if attribution else NoAttribution(),
        weighting,
        anchors(DeferredBackward() if routes.anchor_backward == "deferred" else JointBackward()),
        args.triplet_weight,
    )
    # Deviation: evaluation drops the importance (uniform weights, no triplet term) unless eval_importance, so that
    # held-out numbers are plain DPO quantities and cost one forward per model; its anchors never defer (no backward).
    full_eval = StepPolicies(train.attribution, weighting, anchors(JointBackward()), args.triplet_weight)
    plain_eval = StepPolicies(NoAttribution(), TokenWeighting("uniform"), NoAnchors(), 0.0)
    return Engine(
        head, layout, reference, live, {"train": train, "eval": full_eval if args.eval_importance else plain_eval}
    )


def _head_and_layout(routes: Routes, args, unwrap, workspace):
    """The head of ``routes.head`` and the layout of ``routes.layout`` around it."""
    chunked = routes.head == "chunked"
    head = ChunkedHead(args.logits_chunk_size, workspace, unwrap) if chunked else FullLogitsHead(unwrap)
    if routes.layout == "shared prompt":
        return head, SharedPrompt(head, prompt_attributions=args.weight_span == "sequence")
    return head, {"whole rows": PaddedRows, "packed rows": PackedRows}[routes.layout](head)
