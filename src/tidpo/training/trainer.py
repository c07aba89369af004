"""``TIDPOTrainer``: a ``transformers.Trainer`` that optimises the TI-DPO objective (arXiv 2505.19653v3, Eq. 14).

One training step reads as: policy forward → reference → per-token statistics → attribution → token weights →
base loss → anchors and triplet → objective → finite check → metrics. The math lives in ``tidpo.ops``,
``tidpo.importance`` and ``tidpo.losses``; the engineering routes (head, layout, attribution, reference, anchor
backward) are resolved once in ``__init__`` (``trainer.routes``, :mod:`tidpo.training.routes`) and the step calls
the objects they chose, testing no flag. This class only orchestrates.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import GenerationConfig, Trainer

from tidpo.data import (
    PreferenceCollator,
    add_token_weight_columns,
    load_preference_data,
    tokenize_preference_dataset,
)
from tidpo.lm_head import HeadWorkspace
from tidpo.losses import sequence_kl, ti_dpo_base_loss, ti_dpo_objective, weighted_logratio
from tidpo.models import load_pretrained_causal_lm, load_pretrained_tokenizer
from tidpo.training.config import TIDPOConfig
from tidpo.training.distributed import AnchorSampling, generation_gather, prepare_reference, sharding_engine
from tidpo.training.metrics import MetricBuffer, record_step
from tidpo.training.prompt_cache import PromptSharing
from tidpo.training.ref_cache import score_dataset, weights_digest, with_reference_logps
from tidpo.training.reference import disable_dropout, frozen_copy, is_peft_model
from tidpo.training.routes import build_engine, resolve_routes
from tidpo.training.trl_compat import from_dpo_config, is_dpo_config

logger = logging.getLogger("tidpo")
TOKENIZED_COLUMNS = {"prompt_ids", "chosen_ids", "rejected_ids"}


class NonFiniteError(FloatingPointError):
    """A NaN or an Inf in the loss, the token weights, the attributions or the gradient norm (the message says
    which, at which step, and for which rows of the data)."""


class TIDPOTrainer(Trainer):
    """Train a causal LM with TI-DPO; DPO/TDPO baselines by configuration (:class:`TIDPOConfig`).

    Args:
        model: a causal LM, or a folder, a built-in name or a Hub id, loaded with ``AutoModelForCausalLM.
            from_pretrained`` and ``args.model_init_kwargs`` (with ``args.trust_remote_code``).
        ref_model: the frozen reference (a model, or a name loaded like ``model``). Default: with ``peft_config``
            (or a PEFT ``model``) the policy with its adapters disabled, otherwise a frozen copy of ``model``.
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
        **kwargs,
    ):
        args = _checked_args(args, importance_fn)
        self.data_sources = {  # how the model card names what the run started from
            "model": _source_name(model),
            "dataset": _source_name(train_dataset),
            "eval_dataset": None if eval_dataset is None else _source_name(eval_dataset),
        }
        model, ref_model, processing_class = _models(model, ref_model, args, processing_class, peft_config)
        self.importance_fn = importance_fn
        train_dataset = self._prepare_dataset(train_dataset, processing_class, args, "train")
        eval_dataset = self._map_eval(eval_dataset, lambda d, k: self._prepare_dataset(d, processing_class, args, k))
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
        # the cache key of precomputed reference log-probs: the reference's weights as given, before any sharding
        # (a PEFT policy's digest leaves out its adapters, so it is the base weights: π_ref)
        self._ref_weights_key = (
            weights_digest(ref_model if ref_model is not None else model) if args.precompute_ref_log_probs else None
        )
        self.ref_model = prepare_reference(self.accelerator, ref_model)
        self._metrics = MetricBuffer(gather=self.accelerator.gather_for_metrics)
        self._anchor_backward = None  # the deferred anchor backward of the step in progress
        self._tokens_since_log, self._num_tokens = 0, None  # this process's count; the run's total at the last log
        self._nonfinite: list[str] = []  # what went non-finite in this update's micro-batches
        self._skipped_updates, self._consecutive_skips = 0, 0
        self.routes = self._resolve_routes(ref_model)
        self.anchor_generation_config = _anchor_generation_config(args, processing_class)
        self.engine = build_engine(
            self.routes, args, self.ref_model, self.accelerator.unwrap_model, self.anchor_generation_config,
            importance_fn=importance_fn,
            # the chunked head's scratch buffers, kept between steps on a CPU, where a fresh (rows, vocab) buffer
            # costs page faults; a GPU's caching allocator already reuses memory, and kept buffers would only add
            # to its peak
            workspace=HeadWorkspace() if args.device.type == "cpu" else None,
            sampling=AnchorSampling(args.seed, self.accelerator.process_index, lambda: self.state.global_step,
                                    generation_gather(self.accelerator)),
        )  # fmt: skip
        if self.routes.reference == "cached":
            self.train_dataset = self._with_reference_logps(self.train_dataset, "train")
            self.eval_dataset = self._map_eval(self.eval_dataset, self._with_reference_logps)

    def _resolve_routes(self, ref_model: nn.Module | None):
        models = {"policy": self.accelerator.unwrap_model(self.model)}
        if ref_model is not None:
            models["reference"] = ref_model
        routes = resolve_routes(self.args, models, self._collator_problem, sharding_engine(self.accelerator, models))
        logger.log(logging.WARNING if routes.fallbacks else logging.INFO, "tidpo routes: %s", routes)
        return routes

    def _collator_problem(self) -> str | None:
        """Why the data collator's batches cannot be split into shared prompts (None when they can). A collator of
        one's own is probed on the first batch only when ``share_prompt=True`` was asked for."""
        if isinstance(self.data_collator, PreferenceCollator):
            return None
        kind = type(self.data_collator).__name__
        if self.args.share_prompt is not True:
            return f"the data collator is a {kind}, not tidpo's PreferenceCollator"
        dataset = self.train_dataset if self.train_dataset is not None else self.eval_dataset
        if dataset is None or isinstance(dataset, dict):
            return None  # nothing to probe: each batch is checked as it comes
        rows = [dataset[i] for i in range(min(self.args.per_device_train_batch_size, len(dataset)))]
        if PromptSharing.from_batch(self.data_collator(rows)) is None:
            return f"the data collator ({kind}) gives batches that are not prompt + response rows"
        return None

    @staticmethod
    def _map_eval(eval_dataset, fn):
        """``fn(dataset, name)`` on the eval dataset, or on each of a dict of them."""
        if isinstance(eval_dataset, dict):
            return {k: fn(v, k) for k, v in eval_dataset.items()}
        return fn(eval_dataset, "eval")

    @staticmethod
    def _prepare_dataset(dataset, tokenizer, args: TIDPOConfig, name: str):
        if dataset is None:
            return None
        # the dataset's token weights, checked and aligned with the ids, where the step reads them: in training,
        # and at evaluation only with eval_importance (else uniform weights, and the columns are ignored)
        weights = args.needs_weight_columns and (name == "train" or args.eval_importance)
        zero_ok = args.allows_zero_weight_rows
        if hasattr(dataset, "column_names") and TOKENIZED_COLUMNS <= set(dataset.column_names):
            if not weights:
                return dataset
            return add_token_weight_columns(
                dataset, tokenizer.eos_token_id, max_length=args.max_length, allow_all_zero=zero_ok, name=name
            )
        dataset = load_preference_data(dataset, split=name if name != "eval" else "test")
        return tokenize_preference_dataset(
            dataset, tokenizer, max_length=args.max_length, name=name, weight_columns=weights,
            allow_zero_weights=zero_ok,
        )  # fmt: skip

    # ---- the loss -------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TI-DPO loss of one micro-batch (``input_ids`` etc. in TRL's layout: B chosen rows, then B rejected)."""
        mode = "train" if model.training else "eval"
        step, engine, args = self.engine.steps[mode], self.engine, self.args
        if mode == "train":  # tokens of the rows run (prompt + response, each response's row), for num_tokens
            self._tokens_since_log = self._tokens_since_log + inputs["attention_mask"].detach().sum()
        log = functools.partial(self._metrics.add, mode)
        completion_mask = inputs["completion_mask"]
        batch = engine.layout.split(inputs)
        policy = engine.layout.policy_forward(model, batch, graph=step.attribution.graph)
        ref = engine.reference.forward(model, batch)
        stats = engine.reference.token_stats(policy.features, ref, inputs, with_kl=args.kl_weight > 0, summary=True)
        attributions = step.attribution(model, policy, batch, inputs, log)  # Eqs. 5-6
        unchecked_attributions = attributions  # checked with the loss below, unless already noted here
        try:
            weights = step.weighting(inputs, attributions)  # Eqs. 7-8
        except FloatingPointError:  # NaN/Inf attributions: NaN weights, so the update guard sees it on every rank
            if mode == "eval":
                raise
            self._check_finite(mode, inputs, attributions=attributions)
            unchecked_attributions = None
            weights = torch.full(completion_mask.shape, math.nan, device=completion_mask.device)
        logratio = weighted_logratio(stats.per_token_logps, stats.ref_per_token_logps, weights)  # Eqs. 9-10
        seq_kl = None if stats.per_token_kl is None else sequence_kl(stats.per_token_kl, completion_mask).chunk(2)
        base = ti_dpo_base_loss(*logratio.chunk(2), args.beta, *(seq_kl or (None, None)), args.kl_mode,
                                args.kl_weight)  # fmt: skip
        rho = stats.per_token_logps - stats.ref_per_token_logps
        triplet_loss = None
        try:
            triplet, pending = step.anchors(model, batch, policy, ref, rho, completion_mask, log)  # Eq. 13
            triplet_loss = None if triplet is None else triplet.loss
        except RuntimeError as err:  # torch's sampler on NaN/Inf logits; noted, and the update guard decides
            if mode == "eval" or "probability tensor contains" not in str(err):
                raise
            self._check_finite(mode, inputs, anchor_logits=torch.tensor(math.nan))
            triplet, pending, triplet_loss = None, None, base.new_tensor(math.nan)
        out = ti_dpo_objective(base, triplet_loss, step.triplet_weight)  # Eq. 14
        self._check_finite(mode, inputs, loss=out.loss, token_weights=weights, attributions=unchecked_attributions)
        self._anchor_backward = None if pending is None else pending.gradient(out.loss)
        record_step(log, args.beta, stats, logratio, weights, completion_mask, seq_kl, out, triplet)
        return (out.loss, {"base_losses": base}) if return_outputs else out.loss

    # ---- non-finite numbers: caught before the optimiser step, on every process together -------------------
    def _check_finite(self, mode: str, inputs, **quantities) -> None:
        """Note (training) or raise (evaluation) the quantities of this micro-batch that hold a NaN or an Inf."""
        named = [(name, value) for name, value in quantities.items() if isinstance(value, torch.Tensor)]
        bad = torch.stack([~torch.isfinite(value.detach()).all() for _, value in named]).tolist()
        if not any(bad):
            return
        rows = inputs.get("tidpo_row")
        where = "" if rows is None else f" (pairs at rows {', '.join(str(int(r)) for r in rows.tolist())} of the data)"
        found = f"{', '.join(name for (name, _), b in zip(named, bad, strict=True) if b)}{where}"
        if mode == "eval":
            raise NonFiniteError(f"non-finite {found} at evaluation (step {self.state.global_step})")
        self._nonfinite.append(found)

    def _get_grad_norm(self, model, grad_norm=None):
        """``Trainer._get_grad_norm``; then the update is checked (see ``on_nonfinite``) before the optimiser runs."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        self._guard_update(grad_norm)
        return grad_norm

    def _guard_update(self, grad_norm) -> None:
        found, self._nonfinite = self._nonfinite, []
        norm = None if grad_norm is None else float(grad_norm)
        if norm is not None and not math.isfinite(norm):
            found.append(f"gradient norm ({norm})")
        flag = torch.tensor([1.0 if found else 0.0], device=self.args.device)
        if self.accelerator.num_processes > 1:  # every process takes the same decision
            flag = self.accelerator.reduce(flag, reduction="sum")
        if not bool(flag.item()):
            self._consecutive_skips = 0
            return
        what = "; ".join(found) if found else "on another process"
        step = self.state.global_step + 1
        if self.args.on_nonfinite == "raise":
            raise NonFiniteError(
                f"non-finite values in the update of step {step}: {what}. Nothing was applied. Lower the learning "
                "rate, check those rows, or pass on_nonfinite='skip' to drop such updates"
            )
        self._skipped_updates += 1
        self._consecutive_skips += 1
        if self._consecutive_skips > self.args.max_nonfinite_skips:
            raise NonFiniteError(
                f"{self._consecutive_skips} updates in a row had non-finite values (the last, step {step}: {what}); "
                f"stopping (max_nonfinite_skips={self.args.max_nonfinite_skips})"
            )
        logger.warning(f"step {step}: update skipped, non-finite {what} ({self._skipped_updates} skipped so far)")
        optimizer = self.optimizer

        def skipped_step(*args, **kwargs):  # this step's optimizer.step(), then the method is the class's again
            del optimizer.step

        optimizer.step = skipped_step

    def training_step(self, model, inputs, num_items_in_batch=None):
        """``Trainer.training_step`` (forward + main backward), then the deferred anchors' backward."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        anchor_backward, self._anchor_backward = self._anchor_backward, None
        if anchor_backward is not None:
            with self.compute_loss_context_manager():
                surrogate = anchor_backward.surrogate(model, self.engine.layout)
            # the same 1/accumulation scaling Trainer applies to the main loss (loss_is_scaled_for_ga is False)
            self.accelerator.backward(surrogate / self.current_gradient_accumulation_steps)
        return loss

    # ---- checkpoints: written whole or not at all (tidpo.training.checkpoints) -----------------------------
    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint`` (True for the last one) only takes a complete checkpoint,
        and a checkpoint left half-written by an interrupted save is removed first."""
        from tidpo.training import checkpoints

        resume = checkpoints.resolve_resume(resume_from_checkpoint, self.args.output_dir)
        if self.is_world_process_zero():
            checkpoints.clear_staging(self.args.output_dir)
            if resume is not None:
                from tidpo.training.outputs import changed_settings

                changed = changed_settings(Path(resume), self.args)
                if changed:
                    logger.warning(
                        f"resuming from {resume} with settings that differ from its run ({'; '.join(changed)}): "
                        "the run goes on with the new ones, and is no longer the run it would have been"
                    )
        self.accelerator.wait_for_everyone()
        return super().train(resume_from_checkpoint=resume, trial=trial, **kwargs)

    def _get_output_dir(self, trial) -> str:
        staging = getattr(self, "_staging_dir", None)
        return staging if staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """``Trainer._save_checkpoint`` into ``.tidpo-partial``, then the marker and the rename (every process has
        written its part first), then the rotation of old checkpoints in the real folder."""
        from transformers.trainer_utils import rotate_checkpoints

        from tidpo.training import checkpoints

        run_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        staged = run_dir / checkpoints.STAGING / name
        if self.is_world_process_zero() and staged.exists():
            shutil.rmtree(staged)
        self.accelerator.wait_for_everyone()
        self._staging_dir = str(run_dir / checkpoints.STAGING)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
        if self.args.should_save:  # the run's settings, compared when a run resumes from here
            from tidpo.training.outputs import RESUME_SETTINGS, write_trained_settings

            write_trained_settings(staged, self.args, RESUME_SETTINGS)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            best = self.state.best_global_step
            if best and ((run_dir / f"checkpoint-{best}").exists() or best == self.state.global_step):
                self.state.best_model_checkpoint = str(run_dir / f"checkpoint-{best}")
                self.state.save_to_json(str(staged / "trainer_state.json"))
            checkpoints.publish(staged, run_dir / name, self.state.global_step)
            rotate_checkpoints(
                output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False,
            )  # fmt: skip
        self.accelerator.wait_for_everyone()

    def _with_reference_logps(self, dataset, name: str):
        """``dataset`` with the reference's per-token log-probs of every response (cached; see ``ref_cache``)."""
        if dataset is None:
            return None
        live = self.engine.live_reference

        def score():
            return score_dataset(
                dataset, self.data_collator, lambda batch: live.per_token_logps(self.model, batch),
                self.args.per_device_eval_batch_size, self.args.device, desc=f"reference log-probs ({name})",
            )  # fmt: skip

        return with_reference_logps(dataset, self._ref_weights_key, score, self.args.max_length, name)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """``Trainer.save_model``; a call of one's own (not a checkpoint's) also writes the model card
        ``README.md``, ``metrics.jsonl`` and ``training_curves.png`` (:mod:`tidpo.training.outputs`), and an
        ``adapter_config.json`` that names its base portably. That call writes into ``.tidpo-partial/model``
        first and then moves the files into ``output_dir`` (the weights last), so a kill while the model is
        written leaves ``output_dir`` as it was."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call)
        from tidpo.training import checkpoints
        from tidpo.training.outputs import write_run_files

        folder = Path(output_dir or self.args.output_dir)
        staged = folder / checkpoints.STAGING / "model"
        if self.is_world_process_zero() and staged.exists():  # left by a save of this process that failed
            shutil.rmtree(staged)
        super().save_model(str(staged), _internal_call=True)
        if self.is_world_process_zero():
            write_run_files(self, staged, metrics_dir=folder)
            checkpoints.publish_files(staged, folder)
        if self.args.push_to_hub:  # as Trainer.save_model does, once the files are in place
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    # ---- metrics ------------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """``Trainer.evaluate``, with the TI-DPO metrics added to the returned dict under the same prefix."""
        self._metric_key_prefix = metric_key_prefix
        if eval_dataset is not None and not isinstance(eval_dataset, str):  # pairs given here: prepared as in __init__
            eval_dataset = self._prepare_dataset(eval_dataset, self.processing_class, self.args, "eval")
            if self.routes.reference == "cached":
                eval_dataset = self._with_reference_logps(eval_dataset, "eval")
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged TI-DPO metrics to the Trainer's log, in place (``evaluate`` returns the same dict)."""
        prefix = getattr(self, "_metric_key_prefix", "eval") + "_"
        mode = "eval" if any(key.startswith(prefix) for key in logs) else "train"
        metrics = self._metrics.pop(mode)
        if mode == "train" and "loss" in logs:
            metrics["num_tokens"] = self._count_tokens()
            if self.args.on_nonfinite == "skip":
                metrics["skipped_updates"] = float(self._skipped_updates)
        logs.update({(prefix if mode == "eval" else "") + key: value for key, value in metrics.items()})
        super().log(logs, start_time)

    def _count_tokens(self) -> float:
        """The run's tokens so far, over every process (resumed runs continue from their last logged count)."""
        if self._num_tokens is None:
            self._num_tokens = next(
                (row["num_tokens"] for row in reversed(self.state.log_history) if "num_tokens" in row), 0.0
            )
        local = torch.as_tensor(self._tokens_since_log, dtype=torch.float64, device=self.args.device)
        self._num_tokens += float(self.accelerator.gather(local.reshape(1)).sum())
        self._tokens_since_log = 0
        return self._num_tokens

    def _get_eval_sampler(self, eval_dataset):
        """Longest pairs first with ``eval_group_by_length`` (less padding, same metrics); else the Trainer's."""
        if self.args.eval_group_by_length and hasattr(eval_dataset, "column_names"):
            if TOKENIZED_COLUMNS <= set(eval_dataset.column_names):
                return LongestFirstSampler(pair_lengths(eval_dataset, self.args.max_length))
        return super()._get_eval_sampler(eval_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation loss only (uniform weights and no triplet unless ``eval_importance``)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


def pair_lengths(dataset, max_length: int | None) -> list[int]:
    """Tokens of each pair's longer row (prompt + the longer response, cut at ``max_length`` as the collator does)."""
    import pyarrow.compute as pc

    table = dataset.select_columns(sorted(TOKENIZED_COLUMNS)).with_format("arrow")[:]  # list lengths, no copies
    size = {name: pc.list_value_length(table[name]).to_numpy(zero_copy_only=False) for name in TOKENIZED_COLUMNS}
    lengths = size["prompt_ids"] + size["chosen_ids"].clip(min=size["rejected_ids"])
    return (lengths if max_length is None else lengths.clip(max=max_length)).tolist()


class LongestFirstSampler(torch.utils.data.Sampler):
    """Indices by decreasing length (ties in dataset order): consecutive batches hold rows of similar length, and
    the longest batch, the one most likely to run out of memory, comes first."""

    def __init__(self, lengths: list[int]):
        self.order = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)


def _source_name(source) -> str:
    """A model's or dataset's name for the card: the string given, a model's ``name_or_path``, or the type."""
    if isinstance(source, str):
        return source
    from tidpo.training.outputs import portable_base

    name = getattr(getattr(source, "config", None), "_name_or_path", None)
    return portable_base(name) if name else f"<{type(source).__name__}>"


def _checked_args(args: TIDPOConfig | None, importance_fn) -> TIDPOConfig:
    args = args or TIDPOConfig(output_dir="tidpo-output")
    if is_dpo_config(args):
        args = from_dpo_config(args)
        logger.info("tidpo: TRL's DPOConfig converted to TIDPOConfig (preset %r, beta %s)", args.preset, args.beta)
    if not isinstance(args, TIDPOConfig):
        raise TypeError(f"args must be a TIDPOConfig (or TRL's DPOConfig), got {type(args).__name__}")
    if (args.importance == "custom") != (importance_fn is not None):
        raise ValueError("importance='custom' and importance_fn go together: pass both or neither")
    return args


def _models(model, ref_model, args: TIDPOConfig, tokenizer, peft_config):
    """The policy (loaded from a path, wrapped with ``peft_config``), the frozen reference (None for a PEFT policy,
    whose adapters are then disabled to give π_ref) and the tokenizer, dropout off where asked."""
    if isinstance(model, str):
        tokenizer = tokenizer or load_pretrained_tokenizer(model, trust_remote_code=args.trust_remote_code)
        model = load_pretrained_causal_lm(model, **args.from_pretrained_kwargs())
    if isinstance(ref_model, str):  # loaded with the policy's settings (dtype, attention, remote code)
        ref_model = load_pretrained_causal_lm(ref_model, **args.from_pretrained_kwargs())
    if tokenizer is None:
        raise ValueError("processing_class (the tokenizer) is required when model is not a path")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; TI-DPO needs one to end every response")
    if peft_config is not None:
        from peft import get_peft_model
        from transformers import set_seed

        set_seed(args.seed)  # the adapters' initialisation follows the run's seed (as Trainer's model_init does)
        model = get_peft_model(model, peft_config)
    if ref_model is None and not is_peft_model(model):
        ref_model = frozen_copy(model)
    if args.disable_dropout:
        for m in (model, ref_model):
            if m is not None:
                disable_dropout(m)
    if ref_model is not None:
        ref_model.eval().requires_grad_(False)
    return model, ref_model, tokenizer


def _anchor_generation_config(args: TIDPOConfig, tokenizer) -> GenerationConfig:
    """Anchor sampling (docs/method.md §4): top-k, top-p, temperature, at most ``anchor_max_new_tokens``, KV-cached."""
    sampling = {key: getattr(args, f"anchor_{key}") for key in ("temperature", "top_k", "top_p", "max_new_tokens")}
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    return GenerationConfig(do_sample=True, use_cache=True, **sampling, **ids)
