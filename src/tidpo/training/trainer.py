"""``TIDPOTrainer``: a ``transformers.Trainer`` that optimises the TI-DPO objective (arXiv 2505.19653v3, Eq. 14).

One training step reads as: policy forward (with the attribution backward to the embeddings, fused into the
same graph by default) → per-token log-probs → reference forward → token weights → TDPO-KL-weighted preference
loss → anchors and triplet loss → metrics. The math lives in ``tidpo.ops``, ``tidpo.importance`` and
``tidpo.losses``; this class only orchestrates.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Trainer

from tidpo.data import PreferenceCollator, load_preference_data, tokenize_preference_dataset
from tidpo.importance import embedding_attributions, separate_attributions, token_weights
from tidpo.lm_head import HeadWorkspace
from tidpo.losses import preference_loss, sequence_kl, ti_dpo_objective, triplet_loss, weighted_logratio
from tidpo.ops import left_align, move_to_frame
from tidpo.training.anchor import sample_anchors
from tidpo.training.config import TIDPOConfig
from tidpo.training.metrics import MetricBuffer, effective_token_count
from tidpo.training.packing import packing_problem
from tidpo.training.ref_cache import score_dataset, with_reference_logps
from tidpo.training.reference import disable_dropout, frozen_copy, is_peft_model, reference_model
from tidpo.training.scoring import (
    Features,
    PromptSharing,
    SharedPromptFeatures,
    SharingUnsupported,
    TokenStats,
    chunked_head_problem,
    continue_from_prompt,
    forward_features,
    forward_shared_prompt,
    last_token_logits,
    shared_prompt_attributions,
    token_stats,
)

logger = logging.getLogger("tidpo")
TOKENIZED_COLUMNS = {"prompt_ids", "chosen_ids", "rejected_ids"}


@dataclass
class PolicyOutput:
    """The policy's forward output (hidden states or logits, ``(2B, L, ·)``, chosen rows first) and, when
    computed, the attributions ``(2B, L)``."""

    features: Features
    attributions: Tensor | None


@dataclass
class DeferredAnchors:
    """Anchor rows whose graph is rebuilt after the main backward, with ``∂loss/∂ρ(anchor)`` ``(B, L)``."""

    input_ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor
    grad: Tensor
    frame: Tensor  # the completion mask of ``grad``'s frame (the anchors alone with shared prompts)


class TIDPOTrainer(Trainer):
    """Train a causal LM with TI-DPO; DPO/TDPO baselines by configuration (:class:`TIDPOConfig`).

    Args:
        model: a causal LM, or a local path/name for ``AutoModelForCausalLM.from_pretrained``.
        ref_model: the frozen reference. Default: with ``peft_config`` (or a PEFT ``model``) the policy with its
            adapters disabled, otherwise a frozen copy of ``model``.
        args: :class:`TIDPOConfig`.
        train_dataset, eval_dataset: preference data in any form ``tidpo.load_preference_data`` reads (a
            ``Dataset``, ``DatasetDict``, file or folder), or already tokenised (``prompt_ids``, ``chosen_ids``,
            ``rejected_ids``).
        processing_class: the tokenizer (loaded from ``model`` when that is a path).
        peft_config: a ``peft`` config; the policy is wrapped with ``get_peft_model``.
        importance_fn: a custom token-importance estimator, used with ``importance="custom"``:
            ``(input_ids, attention_mask, completion_mask) -> (B, L)`` non-negative scores, mixed with the
            prior by ``importance_mix`` like the gradient attribution.
    """

    # compute_loss returns the mean over the micro-batch's pairs; Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model,
        ref_model: nn.Module | None = None,
        args: TIDPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        peft_config=None,
        importance_fn=None,
        data_collator=None,
        **kwargs,
    ):
        args = args or TIDPOConfig(output_dir="tidpo-output")
        if not isinstance(args, TIDPOConfig):
            raise TypeError(f"args must be a TIDPOConfig, got {type(args).__name__}")
        if (args.importance == "custom") != (importance_fn is not None):
            raise ValueError("importance='custom' and importance_fn go together: pass both or neither")
        if isinstance(model, str):
            processing_class = processing_class or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model)
        if processing_class is None:
            raise ValueError("processing_class (the tokenizer) is required when model is not a path")
        if processing_class.pad_token_id is None:
            processing_class.pad_token = processing_class.eos_token
        if processing_class.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; TI-DPO needs one to end every response")
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        if ref_model is None and not is_peft_model(model):
            ref_model = frozen_copy(model)
        if args.disable_dropout:
            for m in (model, ref_model):
                if m is not None:
                    disable_dropout(m)
        self.importance_fn = importance_fn
        train_dataset = self._prepare_dataset(train_dataset, processing_class, args, "train")
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._prepare_dataset(v, processing_class, args, k) for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._prepare_dataset(eval_dataset, processing_class, args, "eval")
        data_collator = data_collator or PreferenceCollator(processing_class.pad_token_id, max_length=args.max_length)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        self.ref_model = None
        if ref_model is not None:
            ref_model.eval().requires_grad_(False)
            self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)
        self._metrics = MetricBuffer(gather=self.accelerator.gather_for_metrics)
        self._deferred: DeferredAnchors | None = None
        self._chunked = self._use_chunked_logits(model, ref_model)
        # the chunked head's scratch buffers, kept between steps on a CPU, where a fresh (rows, vocab) buffer costs
        # page faults; a GPU's caching allocator already reuses memory, and kept buffers would only add to its peak
        self._head_workspace = HeadWorkspace() if self.args.device.type == "cpu" else None
        self._share_prompt = self._chunked and args.share_prompt and not args.gradient_checkpointing
        if args.padding_free:
            for name, m in (("policy", model), ("reference", ref_model)):
                problem = None if m is None else packing_problem(m)
                if problem is not None:
                    raise ValueError(f"padding_free: the {name} cannot run packed rows: {problem}")
        if args.precompute_ref_logps:
            self.train_dataset = self._with_reference_logps(self.train_dataset, "train")
            if isinstance(self.eval_dataset, dict):
                self.eval_dataset = {k: self._with_reference_logps(v, k) for k, v in self.eval_dataset.items()}
            else:
                self.eval_dataset = self._with_reference_logps(self.eval_dataset, "eval")
        self.anchor_generation_config = GenerationConfig(
            do_sample=True,
            max_new_tokens=args.anchor_max_new_tokens,
            temperature=args.anchor_temperature,
            top_k=args.anchor_top_k,
            top_p=args.anchor_top_p,
            eos_token_id=processing_class.eos_token_id,
            pad_token_id=processing_class.pad_token_id,
            use_cache=True,
        )

    def _use_chunked_logits(self, model: nn.Module, ref_model: nn.Module | None) -> bool:
        if not self.args.chunked_logits:
            return False
        for name, m in (("policy", model), ("reference", ref_model)):
            problem = None if m is None else chunked_head_problem(m)
            if problem is not None:
                logger.warning("chunked_logits: the %s cannot use it (%s); using full logits", name, problem)
                return False
        return True

    @staticmethod
    def _prepare_dataset(dataset, tokenizer, args: TIDPOConfig, name: str):
        if dataset is None:
            return None
        if hasattr(dataset, "column_names") and TOKENIZED_COLUMNS <= set(dataset.column_names):
            return dataset
        dataset = load_preference_data(dataset, split=name if name != "eval" else "test")
        return tokenize_preference_dataset(dataset, tokenizer, max_length=args.max_length, name=name)

    # ---- the loss -------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TI-DPO loss of one micro-batch (``input_ids`` etc. in TRL's layout: B chosen rows, then B rejected)."""
        mode = "train" if model.training else "eval"
        full = mode == "train" or self.args.eval_importance
        input_ids, completion_mask = inputs["input_ids"], inputs["completion_mask"]
        attribute = full and self.args.needs_attribution
        cached_ref = inputs.get("ref_token_logps")  # precompute_ref_logps: no reference forward at all

        def forwards(sharing):
            policy = self._policy_forward(model, inputs, attribute, sharing)
            return policy, None if cached_ref is not None else self._ref_forward(model, inputs, sharing)

        policy, ref = self._with_sharing(forwards, inputs)
        stats = self._token_stats(policy.features, ref, input_ids, completion_mask, self.args.kl_weight > 0)
        if cached_ref is not None:
            stats = TokenStats(stats.logps, cached_ref * completion_mask, None)
        weights = self._token_weights(inputs, policy.attributions, uniform=not full)
        logratio = weighted_logratio(stats.logps, stats.ref_logps, weights)
        kl = sequence_kl(stats.kl, completion_mask).chunk(2) if stats.kl is not None else None
        base = self._base_losses(logratio.chunk(2), kl)
        rho = stats.logps - stats.ref_logps
        triplet, anchors = (
            self._triplet(model, inputs, rho, mode, policy.features, ref)
            if full and self.args.triplet_weight > 0
            else (None, None)
        )
        out = ti_dpo_objective(base, triplet.loss if triplet else None, self.args.triplet_weight if full else 0.0)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"non-finite TI-DPO loss at step {self.state.global_step} ({mode}): {out.loss}")
        if anchors is not None:  # ∂loss/∂ρ(anchor) now; the anchors' own backward runs after the main one
            anchors.grad = torch.autograd.grad(out.loss, anchors.grad, retain_graph=True)[0]
            self._deferred = anchors
        self._record(mode, stats, logratio, weights, completion_mask, kl, out, triplet)
        return (out.loss, {"base_losses": base}) if return_outputs else out.loss

    def _unwrapped(self, model: nn.Module) -> nn.Module:
        return self.accelerator.unwrap_model(model)

    def _features(self, model: nn.Module, **inputs) -> Features:
        return forward_features(model, self._chunked, packed=self.args.padding_free, **inputs)

    def _ref_forward(self, model: nn.Module, inputs, sharing: PromptSharing | None = None) -> Features:
        with reference_model(self._unwrapped(model), self.ref_model) as ref:
            if sharing is not None:
                return forward_shared_prompt(ref, sharing)
            return self._features(ref, input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])

    def _with_reference_logps(self, dataset, name: str):
        """``dataset`` with the reference's per-token log-probs of every response (cached; see ``ref_cache``)."""
        if dataset is None:
            return None

        def token_logps(batch):
            features = self._with_sharing(lambda sharing: self._ref_forward(self.model, batch, sharing), batch)
            return self._token_stats(features, None, batch["input_ids"], batch["completion_mask"], False).logps

        def score():
            return score_dataset(
                dataset, self.data_collator, token_logps, self.args.per_device_eval_batch_size, self.args.device,
                desc=f"reference log-probs ({name})",
            )  # fmt: skip

        with reference_model(self._unwrapped(self.model), self.ref_model) as reference:
            return with_reference_logps(dataset, reference, score, self.args.max_length, name)

    def _with_sharing(self, forward, inputs):
        """``forward(sharing)`` with the batch split into prompts and responses when the shared-prompt route
        applies, else ``forward(None)``; a batch or a model the route cannot serve turns it off, with a warning."""
        sharing = PromptSharing.from_batch(inputs) if self._share_prompt else None
        if self._share_prompt and sharing is None:
            logger.warning("share_prompt: the batch is not prompt + response rows as collated; running whole rows")
            self._share_prompt = False
        try:
            return forward(sharing)
        except SharingUnsupported as error:
            logger.warning("share_prompt: %s; running whole rows from now on", error)
            self._share_prompt = False
            return forward(None)

    def _token_stats(self, policy: Features, ref: Features, input_ids, completion_mask, with_kl: bool) -> TokenStats:
        chunk = self.args.logits_chunk_size
        return token_stats(
            policy, ref, input_ids, completion_mask, with_kl=with_kl, chunk_size=chunk, workspace=self._head_workspace
        )

    def _policy_forward(self, model, inputs, attribute: bool, sharing: PromptSharing | None) -> PolicyOutput:
        """Policy forward; with ``attribute``, Eqs. 5–6 attributions too (timed)."""
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        embed = self._unwrapped(model).get_input_embeddings()
        if sharing is None:
            prompt_embeds, embeds, mask = None, embed(input_ids), attention_mask
        else:
            (prompt_embeds, embeds), mask = sharing.embed(embed), sharing.response_mask
        fused = attribute and self.args.attribution == "fused"
        # with a shared prompt the prompt tokens' attributions are needed only for a span over the whole sequence
        prompt_attributions = fused and sharing is not None and self.args.weight_span == "sequence"
        if fused and not embeds.requires_grad:  # frozen embeddings (LoRA): a leaf to take the gradient at
            embeds = embeds.detach().requires_grad_(True)
        if prompt_attributions and not prompt_embeds.requires_grad:
            prompt_embeds = prompt_embeds.detach().requires_grad_(True)
        with torch.enable_grad() if fused else contextlib.nullcontext():  # eval_importance runs under no_grad
            if sharing is None:
                features = self._features(model, inputs_embeds=embeds, attention_mask=attention_mask)
            else:
                features = forward_shared_prompt(model, sharing, embeds, prompt_embeds)
        attributions = None
        if attribute:
            start = time.perf_counter()
            if fused and sharing is not None:
                with torch.enable_grad():
                    attributions = shared_prompt_attributions(
                        features, sharing, embeds, prompt_embeds if prompt_attributions else None
                    )
            elif fused:
                with torch.enable_grad():
                    target_logits = last_token_logits(features, mask)
                attributions = embedding_attributions(target_logits, embeds, mask, retain_graph=True)
            else:
                attributions = separate_attributions(
                    lambda e: last_token_logits(
                        self._features(model, inputs_embeds=e, attention_mask=attention_mask), attention_mask
                    ),
                    embed(input_ids),
                    attention_mask,
                )
            self._metrics.add(self._mode(model), "time/attribution", self._elapsed(start))
        return PolicyOutput(features, attributions)

    def _token_weights(self, inputs, attributions: Tensor | None, uniform: bool) -> Tensor:
        args = self.args
        estimator = "uniform" if uniform else (self.importance_fn if args.importance == "custom" else args.importance)
        return token_weights(
            estimator,
            inputs["completion_mask"],
            attributions=attributions,
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            mix=args.importance_mix,
            sigma_div=args.prior_sigma_div,
            span=args.weight_span,
            norm=args.weight_norm,
        )

    def _base_losses(self, logratio: tuple[Tensor, Tensor], kl: tuple[Tensor, Tensor] | None) -> Tensor:
        chosen_kl, rejected_kl = kl if kl is not None else (None, None)
        if chosen_kl is not None and self.args.kl_mode == "tdpo2":
            chosen_kl = chosen_kl.detach()  # TDPO2: sg[SeqKL(x, y_w)]
        return preference_loss(*logratio, self.args.beta, chosen_kl, rejected_kl, self.args.kl_weight)

    def _triplet(self, model, inputs, rho: Tensor, mode: str, policy: Features, ref: Features):
        """Sample anchors (timed), score them with both models, and take Eq. 13 over the response frames.

        With shared prompts the anchors continue the prompts' keys and values from the main forwards: sampling
        runs no prompt, and scoring runs only the anchor tokens (with ``anchor_backward="joint"`` the policy's
        anchor graph joins the prompt's, so one backward serves both).

        Returns the triplet output and, with a deferred anchor backward in training, the anchor rows to
        rebuild after the main backward (their ``grad`` field holds, for now, the detached ρ leaf).
        """
        start = time.perf_counter()
        unwrapped = self._unwrapped(model)
        shared = isinstance(policy, SharedPromptFeatures) and isinstance(ref, SharedPromptFeatures)
        anchors = sample_anchors(
            unwrapped, inputs["prompt_input_ids"], inputs["prompt_attention_mask"], self.anchor_generation_config,
            prompt=policy.prompt if shared else None,
        )  # fmt: skip
        self._metrics.add(mode, "time/anchor_sampling", self._elapsed(start))
        setting = self.args.anchor_backward
        defer = mode == "train" and (setting == "deferred" or (setting == "auto" and not shared))
        if shared:  # the frame of the anchor tokens alone, behind a slot for the prompt's last token
            ids = torch.cat([anchors.tokens[:, :1], anchors.tokens], dim=1)
            cmask = torch.cat([torch.zeros_like(anchors.token_mask[:, :1]), anchors.token_mask], dim=1)
            prompt = policy.prompt.detached() if defer else policy.prompt
            with torch.no_grad() if defer else contextlib.nullcontext():
                anchor_policy = continue_from_prompt(model, prompt, anchors.token_mask, anchors.tokens)
            with reference_model(unwrapped, self.ref_model) as ref_model:
                anchor_ref = continue_from_prompt(ref_model, ref.prompt, anchors.token_mask, anchors.tokens)
        else:
            ids, cmask = anchors.input_ids, anchors.completion_mask
            with torch.no_grad() if defer else contextlib.nullcontext():
                anchor_policy = self._features(model, input_ids=ids, attention_mask=anchors.attention_mask)
            anchor_ref = self._ref_forward(model, {"input_ids": ids, "attention_mask": anchors.attention_mask})
        stats = self._token_stats(anchor_policy, anchor_ref, ids, cmask, with_kl=False)
        anchor_rho = stats.logps - stats.ref_logps
        deferred = None
        if defer:
            anchor_rho = anchor_rho.detach().requires_grad_(True)
            deferred = DeferredAnchors(
                anchors.input_ids, anchors.attention_mask, anchors.completion_mask, grad=anchor_rho, frame=cmask
            )
        chosen, rejected = (
            left_align(r, m) for r, m in zip(rho.chunk(2), inputs["completion_mask"].chunk(2), strict=True)
        )
        self._metrics.add(mode, "anchor/length", cmask.sum(-1).float())
        anchor = left_align(anchor_rho, cmask)
        return triplet_loss(*anchor, *chosen, *rejected, margin=self.args.triplet_margin), deferred

    def training_step(self, model, inputs, num_items_in_batch=None):
        """``Trainer.training_step`` (forward + main backward), then the deferred anchors' backward."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            with self.compute_loss_context_manager():
                policy = self._features(model, input_ids=deferred.input_ids, attention_mask=deferred.attention_mask)
                logps = self._token_stats(policy, None, deferred.input_ids, deferred.completion_mask, False).logps
            grad = move_to_frame(deferred.grad, deferred.frame, deferred.completion_mask)
            # the same 1/accumulation scaling Trainer applies to the main loss (loss_is_scaled_for_ga is False)
            surrogate = (logps * grad).sum() / self.current_gradient_accumulation_steps
            self.accelerator.backward(surrogate)
        return loss

    # ---- metrics --------------------------------------------------------------------------------------------
    def _record(self, mode, stats: TokenStats, logratio, weights, completion_mask, kl, out, triplet) -> None:
        add = self._metrics.add
        chosen_rewards, rejected_rewards = (self.args.beta * logratio.detach()).chunk(2)
        add(mode, "rewards/chosen", chosen_rewards)
        add(mode, "rewards/rejected", rejected_rewards)
        add(mode, "rewards/accuracies", (chosen_rewards > rejected_rewards).float())
        add(mode, "rewards/margins", chosen_rewards - rejected_rewards)
        sequence_logps = (stats.logps.detach() * completion_mask).sum(-1)
        add(mode, "logps/chosen", sequence_logps.chunk(2)[0])
        add(mode, "logps/rejected", sequence_logps.chunk(2)[1])
        add(mode, "loss/base", out.base_loss)
        if kl is not None:
            add(mode, "kl/chosen", kl[0])
            add(mode, "kl/rejected", kl[1])
        if triplet is not None:
            add(mode, "triplet/loss", triplet.loss)
            add(mode, "triplet/dist_pos", triplet.dist_pos)
            add(mode, "triplet/dist_neg", triplet.dist_neg)
        response = completion_mask.bool()
        add(mode, "weights/max", weights.max(-1).values)
        add(mode, "weights/min", weights.masked_fill(~response, float("inf")).min(-1).values)
        effective = effective_token_count(weights)
        add(mode, "weights/effective_tokens", effective)
        add(mode, "weights/effective_fraction", effective / response.sum(-1).clamp(min=1))

    def _mode(self, model) -> str:
        return "train" if model.training else "eval"

    def _elapsed(self, start: float) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """``Trainer.evaluate``, with the TI-DPO metrics added to the returned dict under the same prefix."""
        self._metric_key_prefix = metric_key_prefix
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged TI-DPO metrics to the Trainer's log, in place (``evaluate`` returns the same dict)."""
        prefix = getattr(self, "_metric_key_prefix", "eval") + "_"
        mode = "eval" if any(key.startswith(prefix) for key in logs) else "train"
        metrics = self._metrics.pop(mode)
        logs.update({(prefix if mode == "eval" else "") + key: value for key, value in metrics.items()})
        super().log(logs, start_time)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation loss only (uniform weights and no triplet unless ``eval_importance``)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
