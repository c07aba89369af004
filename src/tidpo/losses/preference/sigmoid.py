"""``sigmoid``: DPO's loss, ``−log σ(β z)`` of the margin (Eq. 12; TI-DPO's base loss)."""

import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def sigmoid(t, s):
    return -F.logsigmoid(s.beta * t.margin)


LOSS = LossType("sigmoid", sigmoid, "margin", "DPO (Eq. 12)", kl=True, f_divergence=True)
