"""Padding-free rows: run a padded batch's sequences packed end to end, without their padding.

A batch padded to length ``L`` spends compute on every padding position. Packed, the ``B`` sequences are laid end
to end into ``R < B`` rows; ``position_ids`` restart at 0 where each sequence starts, and the model is called with
no attention mask, which is how transformers' models learn where sequences begin: with SDPA, eager or flex
attention it builds a block-diagonal causal mask from the restarts, and FlashAttention's variable-length kernels
read the boundaries directly (only from a single row, so those get one row of all tokens).

Other attention implementations get rows of at most ``L`` tokens, filled first-fit in decreasing length; the
space left at a row's end holds filler tokens that form a sequence of their own (their outputs are dropped). The
outputs are scattered back to the padded layout, so everything downstream reads the same ``(B, L, ·)`` tensors;
gradients flow through the gather and the scatter.

A model that ignores the restarts would let sequences attend to each other; :func:`packing_problem` checks that it
does not before training starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def is_flash(config) -> bool:
    """Whether ``config`` selects a flash-attention kernel (which packs into one row)."""
    return "flash" in str(getattr(config, "_attn_implementation", "") or "")


@dataclass
class RowPacking:
    """Where each real token of a ``(B, L)`` batch sits in the packed ``(R, C)`` layout."""

    index: Tensor  # (T,) flat positions of the real tokens in the padded layout, row-major
    slots: Tensor  # (T,) the same tokens' flat positions in the packed layout
    position_ids: Tensor  # (R, C)
    shape: tuple[int, int]  # (B, L)
    packed_shape: tuple[int, int]  # (R, C)

    @classmethod
    def from_mask(cls, attention_mask: Tensor, one_row: bool = False) -> RowPacking | None:
        """The packing of ``attention_mask``'s rows (each row's real tokens must be contiguous), or None when it
        would save nothing: every row already full, or no two sequences fitting one row."""
        batch, length = attention_mask.shape
        counts, starts = _sequence_spans(attention_mask)
        total = int(counts.sum())
        if total == batch * length:
            return None
        capacity = total if one_row else length
        placement = _first_fit(counts, capacity)
        if len(placement.fill) == batch:
            return None
        index, slots, positions = _token_maps(counts, starts, placement, length, capacity)
        device = attention_mask.device
        return cls(
            index=index.to(device),
            slots=slots.to(device),
            position_ids=positions.to(device),
            shape=(batch, length),
            packed_shape=(len(placement.fill), capacity),
        )

    def pack(self, values: Tensor) -> Tensor:
        """``(B, L, ·)`` → ``(R, C, ·)``; filler positions hold zeros (token id 0 for ids)."""
        rows, capacity = self.packed_shape
        flat = values.flatten(0, 1).index_select(0, self.index)
        out = values.new_zeros((rows * capacity, *values.shape[2:]))
        return out.index_copy(0, self.slots, flat).view(rows, capacity, *values.shape[2:])

    def unpack(self, values: Tensor) -> Tensor:
        """``(R, C, ·)`` → ``(B, L, ·)``, zeros at padding positions."""
        batch, length = self.shape
        flat = values.flatten(0, 1).index_select(0, self.slots)
        out = values.new_zeros((batch * length, *values.shape[2:]))
        return out.index_copy(0, self.index, flat).view(batch, length, *values.shape[2:])

    @property
    def packed_fraction(self) -> float:
        """Packed positions over padded positions (the share of the body's per-token work that remains)."""
        return self.packed_shape[0] * self.packed_shape[1] / (self.shape[0] * self.shape[1])


def _sequence_spans(attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's token count and first token position ``(B,)`` each, on the CPU.

    Raises:
        ValueError: a row without tokens, or one whose tokens are not a single run.
    """
    length = attention_mask.shape[1]
    mask = attention_mask.bool().cpu()
    counts = mask.sum(-1)
    starts = mask.int().argmax(-1)
    ends = length - mask.flip(-1).int().argmax(-1)
    for row in range(attention_mask.shape[0]):
        if counts[row] == 0:
            raise ValueError(f"padding_free: row {row} of the batch has no tokens")
        if ends[row] - starts[row] != counts[row]:
            raise ValueError(
                f"padding_free: row {row}'s tokens are not contiguous (padding inside the sequence); packing "
                "needs each row to be one run of tokens with padding only before or after it"
            )
    return counts, starts


@dataclass
class _Placement:
    """First-fit placement of the sequences: tokens used in each packed row, and each sequence's
    ``(packed row, offset)``."""

    fill: list[int]
    place: list[tuple[int, int]]


def _first_fit(counts: Tensor, capacity: int) -> _Placement:
    """Sequences placed first-fit in decreasing length into packed rows of ``capacity`` tokens."""
    batch = counts.shape[0]
    fill: list[int] = []
    place = [0] * batch
    for row in sorted(range(batch), key=lambda r: -int(counts[r])):
        n = int(counts[row])
        target = next((k for k, used in enumerate(fill) if used + n <= capacity), len(fill))
        if target == len(fill):
            fill.append(0)
        place[row] = (target, fill[target])
        fill[target] += n
    return _Placement(fill, place)


def _token_maps(
    counts: Tensor, starts: Tensor, placement: _Placement, length: int, capacity: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``(index, slots, position_ids)`` of :class:`RowPacking` (on the CPU) for the sequences as placed."""
    fill = placement.fill
    index, slots, positions = [], [], torch.zeros(len(fill), capacity, dtype=torch.long)
    for row in range(counts.shape[0]):
        n, (target, offset) = int(counts[row]), placement.place[row]
        span = torch.arange(n)
        index.append(row * length + int(starts[row]) + span)
        slots.append(target * capacity + offset + span)
        positions[target, offset : offset + n] = span
    for target, used in enumerate(fill):  # filler after the last sequence: its own sequence from position 0
        positions[target, used:] = torch.arange(capacity - used)
    return torch.cat(index), torch.cat(slots), positions


def packed_forward(model: nn.Module, attention_mask: Tensor, config=None, **inputs):
    """``model(**inputs)`` over ``attention_mask``'s rows packed without padding, outputs ``.logits`` unpacked
    to the padded layout; a plain padded call when packing saves nothing. ``inputs`` holds ``input_ids`` or
    ``inputs_embeds`` ``(B, L, ·)`` and keyword arguments such as ``use_cache``; ``config`` is the model's
    config (default ``model.config``; pass it when ``model`` is a DDP wrapper, which has none)."""
    packing = RowPacking.from_mask(attention_mask, one_row=is_flash(config or model.config))
    if packing is None:
        return model(attention_mask=attention_mask, **inputs).logits
    for key in ("input_ids", "inputs_embeds"):
        if key in inputs:
            inputs[key] = packing.pack(inputs[key])
    return packing.unpack(model(position_ids=packing.position_ids, **inputs).logits)


@torch.no_grad()
def packing_problem(model: nn.Module, lengths: tuple[int, int] = (5, 7)) -> str | None:
    """Why ``model`` cannot run packed rows (None when it can): two short random sequences run packed must give
    what they give alone. A model whose attention ignores the ``position_ids`` restarts lets the second attend
    to the first."""
    config = model.config
    vocab = model.get_input_embeddings().weight.shape[0]
    device = model.get_input_embeddings().weight.device
    generator = torch.Generator().manual_seed(0)
    ids = [torch.randint(vocab, (n,), generator=generator).to(device) for n in lengths]
    was_training = model.training
    model.eval()
    try:
        alone, packed = _alone_and_packed(model, ids, lengths, device)
    except Exception as error:  # noqa: BLE001 - any failure means: cannot pack
        return f"a packed forward failed ({type(error).__name__}: {error})"
    finally:
        model.train(was_training)
    expected = torch.cat(alone)
    scale = expected.abs().max().clamp(min=1e-6)
    error = ((packed - expected).abs().max() / scale).item()
    tolerance = 1e-3 if model.get_input_embeddings().weight.dtype == torch.float32 else 5e-2
    if not error <= tolerance:
        implementation = getattr(config, "_attn_implementation", None)
        return (
            f"with attention {implementation!r} its packed sequences attend to each other (relative difference "
            f"{error:.2g} from running them alone)"
        )
    return None


def _alone_and_packed(model: nn.Module, ids: list[Tensor], lengths, device) -> tuple[list[Tensor], Tensor]:
    """fp32 logits of the sequences ``ids`` (of ``lengths`` tokens) run one by one, and run packed into one row."""
    alone = [model(input_ids=x[None], use_cache=False).logits[0].float() for x in ids]
    packed = (
        model(
            input_ids=torch.cat(ids)[None],
            position_ids=torch.cat([torch.arange(n, device=device) for n in lengths])[None],
            use_cache=False,
        )
        .logits[0]
        .float()
    )
    return alone, packed
