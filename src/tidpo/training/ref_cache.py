"""Per-token reference log-probs computed once and cached on disk (``precompute_ref_log_probs=True``).

When nothing in a step needs the live reference (``kl_mode="none"`` and ``triplet_weight=0``: the KL needs the
reference's full distribution and the anchors are new every step), the reference is only ever asked for the
log-probs of the dataset's own response tokens. Those are computed once, before training, stored next to each
pair as ``ref_chosen_token_logps`` / ``ref_rejected_token_logps`` (one float per response token kept after
``max_length``), and read from the batch instead of running the reference every step.

The cache file is ``$TIDPO_CACHE/ref-logps/<key>.pt`` (default ``~/.cache/tidpo``). The key hashes the
tokenised pairs, ``max_length`` and the reference's weights (names, shapes, dtypes, values; the trained LoRA
adapter's weights excluded, since a PEFT reference runs without them, and a frozen reference adapter's included),
so a different dataset, truncation or reference never reads stale numbers; the file also holds its key, and one
that is unreadable (say, cut short), written for another key or of the wrong size is ignored with a warning and
computed again. Files are written to a temporary name and
renamed, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from tidpo.data.collator import REF_TOKEN_KEYS
from tidpo.files import replacing
from tidpo.models import cache_root
from tidpo.training.reference import REF_ADAPTER

logger = logging.getLogger("tidpo")
TOKEN_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def weights_digest(model: nn.Module) -> str:
    """BLAKE2b of every parameter and buffer of ``model`` (name, shape, dtype and bytes), the trained LoRA weights
    excluded (a frozen reference adapter, :data:`tidpo.training.reference.REF_ADAPTER`, is part of π_ref: included).
    Sharded (``DTensor``) weights are gathered first, so every process of a run computes the same key."""
    from torch.distributed.tensor import DTensor

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name and f".{REF_ADAPTER}." not in name:
            continue
        if isinstance(tensor, DTensor):
            tensor = tensor.full_tensor()
        raw = tensor.detach().contiguous().view(-1).view(torch.uint8)  # the bytes, whatever the dtype
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(raw.cpu().numpy().tobytes())
    return digest.hexdigest()


def data_digest(dataset, max_length: int | str | None) -> str:
    """BLAKE2b of the tokenised pairs (in order) and ``max_length``."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"max_length={max_length}|rows={len(dataset)}|".encode())
    for column in TOKEN_COLUMNS:
        digest.update(column.encode())
        for ids in dataset[column]:
            digest.update(len(ids).to_bytes(4, "little"))
            digest.update(np.asarray(ids, dtype=np.int64).tobytes())  # host bytes, whatever the default device
    return digest.hexdigest()


def cache_path(data_key: str, weights_key: str) -> Path:
    return cache_root() / "ref-logps" / f"{data_key}-{weights_key}.pt"


def _read_cached(path: Path, key: str, rows: int) -> dict | None:
    """The cached columns of ``path`` when it is whole and holds ``key`` and ``rows`` rows; else None (with a
    warning: the values are computed again and the file rewritten). Loaded with ``weights_only=True``."""
    try:
        cached = torch.load(path, weights_only=True)
    except Exception as err:  # a truncated or foreign file: torch/pickle raise many types
        logger.warning(f"precompute_ref_log_probs: {path} is unreadable ({type(err).__name__}); computing again")
        return None
    problem = None
    if not isinstance(cached, dict) or cached.get("key") != key:
        problem = "it was written for other data or another reference"
    elif any(not isinstance(cached.get(c), list) or len(cached[c]) != rows for c in REF_TOKEN_KEYS):
        problem = f"it does not hold {rows} rows of both columns"
    if problem is not None:
        logger.warning(f"precompute_ref_log_probs: ignoring {path}: {problem}; computing again")
        return None
    return {c: cached[c] for c in REF_TOKEN_KEYS}


def response_values(values: Tensor, completion_mask: Tensor) -> list[list[float]]:
    """Each row's values at its response tokens, in order: ``(N, L) -> N lists``."""
    mask = completion_mask.bool()
    return [values[row][mask[row]].tolist() for row in range(values.shape[0])]


@torch.no_grad()
def score_dataset(
    dataset,
    collator: Callable,
    token_logps: Callable[[dict[str, Tensor]], Tensor],
    batch_size: int,
    device: torch.device,
    desc: str,
) -> dict[str, list[list[float]]]:
    """Run ``token_logps`` (a batch in, ``(2B, L)`` reference log-probs out) over ``dataset`` in order."""
    chosen, rejected = [], []
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc, dynamic_ncols=True):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(device) for k, v in collator(rows).items()}
        logps = token_logps(batch)
        if not torch.isfinite(logps[batch["completion_mask"].bool()]).all():
            raise FloatingPointError(f"{desc}: non-finite reference log-prob in rows {start}–{start + len(rows) - 1}")
        values = response_values(logps.float().cpu(), batch["completion_mask"].cpu())
        chosen += values[: len(rows)]
        rejected += values[len(rows) :]
    return {REF_TOKEN_KEYS[0]: chosen, REF_TOKEN_KEYS[1]: rejected}


def with_reference_logps(
    dataset,
    weights_key: str,
    score: Callable[[], dict[str, list[list[float]]]],
    max_length: int | str | None,
    name: str,
):
    """``dataset`` with the two per-token reference columns, from the cache or from ``score()`` (then cached);
    ``weights_key`` is the reference's :func:`weights_digest`; ``max_length`` the rows' cut (with ``" keep_end"``
    appended when rows keep their end), part of the key."""
    if set(REF_TOKEN_KEYS) <= set(dataset.column_names):
        return dataset
    data_key = data_digest(dataset, max_length)
    key, path = f"{data_key}-{weights_key}", cache_path(data_key, weights_key)
    columns = _read_cached(path, key, len(dataset)) if path.is_file() else None
    if columns is not None:
        logger.info("precompute_ref_log_probs: %s reference log-probs read from %s", name, path)
    else:
        columns = score()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as partial:
                torch.save({"key": key, **columns}, partial)
            logger.info("precompute_ref_log_probs: %s reference log-probs written to %s", name, path)
        except OSError as err:  # the cache is an optimisation: a read-only cache folder costs a recompute next time
            logger.warning(f"precompute_ref_log_probs: could not write the cache {path} ({err}); not cached")
    if any(len(columns[c]) != len(dataset) for c in REF_TOKEN_KEYS):
        raise ValueError(f"{path}: holds {len(columns[REF_TOKEN_KEYS[0]])} rows for a {len(dataset)}-row dataset")
    for column in REF_TOKEN_KEYS:
        dataset = dataset.add_column(column, columns[column])
    return dataset


def reference_logps_of(trainer, dataset, name: str):
    """``dataset`` with the reference's per-token log-probs of every response, scored by ``trainer``'s live reference
    in its layout (cached on disk under the reference weights' digest; see :func:`with_reference_logps`)."""
    from tidpo.training import drop_in

    if dataset is None:
        return None
    drop_in.refuse_streaming_reference(dataset, name)
    live, args = trainer.engine.live_reference, trainer.args

    def score():
        return score_dataset(
            dataset,
            trainer.data_collator,
            lambda batch: live.per_token_logps(trainer.model, batch),
            args.per_device_eval_batch_size,
            args.device,
            desc=f"reference log-probs ({name})",
        )

    cut = args.max_length if args.truncation_mode == "keep_start" else f"{args.max_length} keep_end"
    return with_reference_logps(dataset, trainer._ref_weights_key, score, cut, name)
