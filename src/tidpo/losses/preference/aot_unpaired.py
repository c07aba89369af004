"""``aot_unpaired``: AOT (unpaired): the chosen and the rejected weighted log-ratios sorted separately, matched rank
by rank, and :func:`tidpo.losses.preference.aot.smoothed_sigmoid` of their difference."""

import torch

from tidpo.losses.loss_type import LossType
from tidpo.losses.preference.aot import smoothed_sigmoid


def aot_unpaired(t, s):
    chosen = torch.sort(t.chosen_logratio, dim=0).values
    rejected = torch.sort(t.rejected_logratio, dim=0).values
    return smoothed_sigmoid(chosen - rejected, s)


LOSS = LossType("aot_unpaired", aot_unpaired, "logratios", "AOT, unpaired", sorts=True)
