"""``TIDPOTrainer``: a ``transformers.Trainer`` that optimises the TI-DPO objective (arXiv 2505.19653v3, Eq. 14).

One training step reads as: policy forward → reference → per-token statistics → attribution → token weights →
base loss → anchors and triplet → objective → finite check → metrics. The math lives in ``tidpo.ops``,
``tidpo.importance`` and ``tidpo.losses``; the engineering routes (head, layout, attribution, reference, anchor
backward) are resolved once in ``__init__`` (``trainer.routes``, :mod:`tidpo.training.routes`) and the step calls
the objects they chose, testing no flag. Each feature's Trainer hooks live with the feature: whole-or-absent saves
(:mod:`tidpo.training.staged_saves`), the update guard (:mod:`tidpo.training.nonfinite`), the datasets
(:mod:`tidpo.training.datasets`), the evaluation order (:mod:`tidpo.data.sampling`), the metrics and the token
count (:mod:`tidpo.training.metrics`). This class only orchestrates.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from transformers import Trainer

from tidpo.data.sampling import LongestFirstSampler, is_tokenized, pair_lengths
from tidpo.lm_head import HeadWorkspace
from tidpo.losses import sequence_kl, ti_dpo_objective, weighted_logratio
from tidpo.losses.loss_family import length_desensitized
from tidpo.models import load_models, run_sources
from tidpo.training import drop_in
from tidpo.training.anchors import anchor_generation_config
from tidpo.training.config import TIDPOConfig
from tidpo.training.datasets import collator_problem, default_collator, map_eval, prepare_dataset
from tidpo.training.distributed import AnchorSampling, generation_gather, prepare_reference, sharding_engine
from tidpo.training.metrics import MetricBuffer, TokenCounter, record_step
from tidpo.training.moe import RouterLoss, router_coefficient
from tidpo.training.nonfinite import UpdateGuard
from tidpo.training.ref_cache import reference_logps_of, weights_digest
from tidpo.training.ref_sync import RefSyncCallback, sync_problem
from tidpo.training.reference import policy_and_reference
from tidpo.training.routes import build_engine, resolve_routes
from tidpo.training.sequence_options import activation_offload, warn_offloading_on_cpu
from tidpo.training.staged_saves import StagedSaves
from tidpo.training.trl_compat import trainer_args

logger = logging.getLogger("tidpo")


class TIDPOTrainer(StagedSaves, Trainer):
    """Train a causal LM with TI-DPO; DPO/TDPO baselines by configuration (:class:`TIDPOConfig`).

    Args:
        model: a causal LM, or a folder, a built-in name or a Hub id, loaded with ``AutoModelForCausalLM.
            from_pretrained`` and ``args.model_init_kwargs`` (with ``args.trust_remote_code``).
        ref_model: the frozen reference (a model, or a name loaded like ``model``). Default: with ``peft_config``
            the policy with its adapters disabled; for a PEFT ``model`` that arrives with a trained adapter, a frozen
            copy of that adapter when training (as TRL) and its base model with ``evaluation_only``; otherwise a
            frozen copy of ``model``.
        args: :class:`TIDPOConfig`, or TRL's ``DPOConfig`` (converted: :func:`tidpo.training.trl_compat.
            from_dpo_config`; a field tidpo cannot honour is an error naming it).
        train_dataset, eval_dataset: preference data in any form ``tidpo.load_preference_data`` reads (a
            ``Dataset``, ``DatasetDict``, file or folder), or already tokenised (``prompt_ids``, ``chosen_ids``,
            ``rejected_ids``).
        processing_class: the tokenizer (loaded from ``model`` when that is a path).
        peft_config: a ``peft`` config; the policy is wrapped with ``get_peft_model``.
        importance_fn: a custom token-importance estimator, used with ``importance="custom"``:
            ``(input_ids, attention_mask, completion_mask) -> (B, L)`` non-negative scores, mixed with the
            prior by ``importance_mix`` like the gradient attribution.

    With ``importance="columns"`` or ``"columns_raw"`` the training data (and the eval data with
    ``eval_importance``) must have ``chosen_weights`` / ``rejected_weights`` columns, one non-negative number per
    response token without the final EOS (:mod:`tidpo.data.token_weights`), checked before training.
    """

    # compute_loss returns the mean over the micro-batch's pairs; Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model,
        ref_model: nn.Module | str | None = None,
        args: TIDPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        peft_config=None,
        importance_fn=None,
        data_collator=None,
        quantization_config=None,
        evaluation_only: bool = False,
        **kwargs,
    ):
        args = trainer_args(args, importance_fn)
        self.data_sources = run_sources(model, train_dataset, eval_dataset)  # how the model card names them
        model, ref_model, tokenizer = _load_models(model, ref_model, processing_class, args, quantization_config)
        drop_in.check_datasets(train_dataset, eval_dataset, evaluation_only)
        drop_in.for_streaming(args, train_dataset)
        model, ref_model = policy_and_reference(
            model, ref_model, peft_config, args.seed, args.disable_dropout, training=not evaluation_only
        )
        self.importance_fn = importance_fn
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator or default_collator(tokenizer, args),
            train_dataset=prepare_dataset(train_dataset, tokenizer, args, "train"),
            eval_dataset=map_eval(eval_dataset, lambda d, k: prepare_dataset(d, tokenizer, args, k)),
            processing_class=tokenizer,
            **kwargs,
        )
        drop_in.add_model_tags(self.model)
        self._set_up_steps(ref_model)

    def _set_up_steps(self, ref_model: nn.Module | None) -> None:
        """The reference, the bookkeeping, the routes and the step objects they choose (after Trainer's set-up)."""
        args, accelerator = self.args, self.accelerator
        # the cache key of precomputed reference log-probs: the reference's weights as given, before any sharding
        # (a PEFT policy's digest leaves out its adapters, so it is the base weights: π_ref)
        self._ref_weights_key = (
            weights_digest(ref_model if ref_model is not None else self.model)
            if args.precompute_ref_log_probs
            else None
        )
        self.ref_model = prepare_reference(accelerator, ref_model)
        self._metrics = MetricBuffer(gather=accelerator.gather_for_metrics)
        self.tokens = TokenCounter(accelerator.gather, args.device)
        self.guard = UpdateGuard(
            args.on_nonfinite, args.max_nonfinite_skips, lambda: self.state.global_step, self._agree
        )
        self._anchor_backward = None  # the deferred anchor backward of the step in progress
        warn_offloading_on_cpu(args.activation_offloading, self.model)
        self.router = RouterLoss(router_coefficient(args, self.accelerator.unwrap_model(self.model)))
        self.router_aux_loss_coef, self.aux_loss_enabled = self.router.coefficient, self.router.enabled
        self.routes = self._resolve_routes(ref_model)
        self.engine = self._build_engine()
        self.losses = args.loss_family()  # the loss table's rows of loss_type (tidpo.losses.preference)
        if args.sync_ref_model:
            self._add_ref_sync(ref_model)
        if self.routes.reference == "cached":
            self.train_dataset = self._with_reference_logps(self.train_dataset, "train")
            self.eval_dataset = map_eval(self.eval_dataset, self._with_reference_logps)

    def _add_ref_sync(self, ref_model: nn.Module | None) -> None:
        models = {"policy": self.accelerator.unwrap_model(self.model)}
        problem = sync_problem(models["policy"], ref_model, sharding_engine(self.accelerator, models))
        if problem is not None:
            raise ValueError(f"sync_ref_model cannot update the reference: {problem}; set sync_ref_model=False")
        self.add_callback(RefSyncCallback(self.ref_model, self.accelerator.unwrap_model))

    def _build_engine(self):
        """The step objects of the resolved routes (:func:`tidpo.training.routes.build_engine`)."""
        args, accelerator = self.args, self.accelerator
        self.anchor_generation_config = anchor_generation_config(args, self.processing_class)
        sampling = AnchorSampling(
            args.seed, accelerator.process_index, lambda: self.state.global_step, generation_gather(accelerator)
        )
        # the chunked head's scratch buffers, kept between steps on a CPU, where a fresh (rows, vocab) buffer costs
        # page faults; a GPU's caching allocator already reuses memory, and kept buffers would only add to its peak
        workspace = HeadWorkspace() if args.device.type == "cpu" else None
        return build_engine(
            self.routes,
            args,
            self.ref_model,
            accelerator.unwrap_model,
            self.anchor_generation_config,
            importance_fn=self.importance_fn,
            workspace=workspace,
            sampling=sampling,
        )

    def _resolve_routes(self, ref_model: nn.Module | None):
        models = {"policy": self.accelerator.unwrap_model(self.model)}
        if ref_model is not None:
            models["reference"] = ref_model
        dataset = self.train_dataset if self.train_dataset is not None else self.eval_dataset
        batch = self.args.per_device_train_batch_size
        problem = functools.partial(collator_problem, self.data_collator, self.args.share_prompt, dataset, batch)
        routes = resolve_routes(self.args, models, problem, sharding_engine(self.accelerator, models))
        logger.log(logging.WARNING if routes.fallbacks else logging.INFO, "tidpo routes: %s", routes)
        return routes

    def _agree(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` summed over the processes, so that every process takes the same decision."""
        if self.accelerator.num_processes == 1:
            return flag
        return self.accelerator.reduce(flag.to(self.args.device), reduction="sum")

    @property
    def _skipped_updates(self) -> int:
        return self.guard.skipped

    # ---- the loss -------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TI-DPO loss of one micro-batch (``input_ids`` etc. in TRL's layout: B chosen rows, then B rejected)."""
        mode = "train" if model.training else "eval"
        step, engine, args, cmask = self.engine.steps[mode], self.engine, self.args, inputs["completion_mask"]
        if mode == "train":
            self.tokens.add(inputs["attention_mask"])
        log = functools.partial(self._metrics.add, mode)
        batch = engine.layout.split(inputs)
        with self.router.capture(self.accelerator.unwrap_model(model)):  # MoE: the router's load-balancing loss
            policy = engine.layout.policy_forward(model, batch, graph=step.attribution.graph)
        ref = engine.reference.forward(model, batch)
        stats = engine.reference.token_stats(policy.features, ref, inputs, with_kl=args.kl_weight > 0, summary=True)
        weighted = step.weighting(inputs, step.attribution(model, policy, batch, inputs, log), stats)  # Eqs. 5-8
        self.guard.note(mode, inputs, weighted.flags)
        weights = length_desensitized(weighted.weights, cmask, args.ld_alpha)  # LD-DPO's factor (ld_alpha)
        logratio = weighted_logratio(stats.per_token_logps, stats.ref_per_token_logps, weights)  # Eqs. 9-10
        seq_kl = None if stats.per_token_kl is None else sequence_kl(stats.per_token_kl, cmask).chunk(2)
        base = self.losses.of_step(logratio, stats, weights, cmask, seq_kl)  # Eqs. 11-12, or another TRL loss
        rho = stats.per_token_logps - stats.ref_per_token_logps
        anchors = step.anchors(model, batch, policy, ref, rho, cmask, log)  # Eq. 13
        self.guard.note(mode, inputs, anchors.flags)
        out = ti_dpo_objective(base, anchors.loss, step.triplet_weight)  # Eq. 14
        loss = self.router.added_to(out.loss, log)  # + router_aux_loss_coef × aux_loss (MoE), as TRL
        self.guard.check(mode, inputs, loss=loss, token_weights=weighted.weights)
        self._anchor_backward = None if anchors.pending is None else anchors.pending.gradient(loss)
        record_step(log, args.beta, stats, logratio, weighted.weights, cmask, seq_kl, out, anchors.triplet)
        return (loss, {"base_losses": base}) if return_outputs else loss

    def _get_grad_norm(self, model, grad_norm=None):
        """``Trainer._get_grad_norm``; then the update is checked (see ``on_nonfinite``) before the optimiser runs."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        self.guard.before_update(grad_norm, model.parameters())
        return grad_norm

    def training_step(self, model, inputs, num_items_in_batch=None):
        """``Trainer.training_step`` (forward + main backward), then the deferred anchors' backward; both with the
        saved activations in CPU memory under ``activation_offloading``."""
        with activation_offload(self.args.activation_offloading, model):
            loss = super().training_step(model, inputs, num_items_in_batch)
            anchor_backward, self._anchor_backward = self._anchor_backward, None
            if anchor_backward is not None:
                with self.compute_loss_context_manager():
                    surrogate = anchor_backward.surrogate(model, self.engine.layout)
                # the same 1/accumulation scaling Trainer applies to the main loss (loss_is_scaled_for_ga is False)
                self.accelerator.backward(surrogate / self.current_gradient_accumulation_steps)
        return loss

    def _with_reference_logps(self, dataset, name: str):
        """``dataset`` with the reference's per-token log-probs of every response (:mod:`.ref_cache`)."""
        return reference_logps_of(self, dataset, name)

    # ---- evaluation and metrics ------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """``Trainer.evaluate``, with the TI-DPO metrics added to the returned dict under the same prefix. Pairs
        given here are prepared as in ``__init__``; a dict of them (or a ``DatasetDict``) is evaluated name by name,
        each with ``<prefix>_<name>`` as its prefix, as in TRL."""
        if isinstance(eval_dataset, dict):
            metrics = {}
            for name, dataset in eval_dataset.items():
                metrics.update(self.evaluate(dataset, ignore_keys, f"{metric_key_prefix}_{name}"))
            return metrics
        self._metric_key_prefix = metric_key_prefix
        if eval_dataset is not None and not isinstance(eval_dataset, str):  # pairs given here: prepared as in __init__
            eval_dataset = prepare_dataset(eval_dataset, self.processing_class, self.args, "eval")
            if self.routes.reference == "cached":
                eval_dataset = self._with_reference_logps(eval_dataset, "eval")
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged TI-DPO metrics to the Trainer's log, in place (``evaluate`` returns the same dict)."""
        prefix = getattr(self, "_metric_key_prefix", "eval") + "_"
        mode = "eval" if any(key.startswith(prefix) for key in logs) else "train"
        metrics = self._metrics.pop(mode)
        if mode == "train" and "loss" in logs:
            metrics["num_tokens"] = self.tokens.at_log(self.state.log_history)
            if self.args.on_nonfinite == "skip":
                metrics["skipped_updates"] = float(self.guard.skipped)
        logs.update({(prefix if mode == "eval" else "") + key: value for key, value in metrics.items()})
        super().log(logs, start_time)

    def _get_eval_sampler(self, eval_dataset):
        """Longest pairs first with ``eval_group_by_length`` (less padding, same metrics); else the Trainer's."""
        if self.args.eval_group_by_length and is_tokenized(eval_dataset):
            return LongestFirstSampler(pair_lengths(eval_dataset, self.args.max_length))
        return super()._get_eval_sampler(eval_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation loss (uniform weights and no triplet unless ``eval_importance``); with ``compute_metrics``,
        also the policy's logits of the ``2B`` rows and their ``input_ids`` as labels, as TRL passes them."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
            if prediction_loss_only:
                return loss.detach(), None, None
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return loss.detach(), logits, inputs["input_ids"]


def _load_models(model, ref_model, processing_class, args: TIDPOConfig, quantization_config):
    """Policy, reference and tokenizer, loaded as TRL does where given by name (:mod:`tidpo.training.drop_in`)."""
    processing_class = drop_in.tokenizer_source(model, processing_class, args.trust_remote_code)
    from_pretrained = drop_in.init_kwargs(args.from_pretrained_kwargs(), model, quantization_config)
    return load_models(model, ref_model, processing_class, from_pretrained, args.trust_remote_code)
