"""``max_logit_before_eos`` (beyond the paper): Eq. 5 taken one position earlier, at the last token before each
row's EOS, whose logits predict the EOS. Under a causal model that output cannot see the EOS's own embedding, so
the EOS gets no attribution: the paper's target puts about half of each response's weight there
(docs/results.md), which this target leaves out while keeping the rest of Eq. 5."""

import torch

from tidpo.importance.attribution import attribution_target, last_token_index
from tidpo.importance.target import AttributionTarget, TargetInputs


def without_last_token(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` with each row's last real token (the EOS) removed: ``(B, L) -> (B, L)``."""
    rows = torch.arange(mask.shape[0], device=mask.device)
    cut = mask.clone()
    cut[rows, last_token_index(mask)] = 0
    return cut


def scalar(x: TargetInputs):
    before_eos = without_last_token(x.attention_mask)
    return attribution_target(x.last_logits(before_eos), before_eos)


TARGET = AttributionTarget(
    "max_logit_before_eos",
    scalar,
    "Eq. 5 at the token before the EOS, so the EOS gets no attribution; beyond the paper",
    rank=2,
)
