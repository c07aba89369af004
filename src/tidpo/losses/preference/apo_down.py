"""``apo_down``: APO-down, lower both rewards, the rejected one more: ``σ(r_w) + 1 − σ(r_w − r_l)``."""

import torch

from tidpo.losses.loss_type import LossType


def apo_down(t, s):
    chosen = t.chosen_logratio
    return torch.sigmoid(s.beta * chosen) + 1 - torch.sigmoid(s.beta * (chosen - t.rejected_logratio))


LOSS = LossType("apo_down", apo_down, "logratios", "APO-down")
