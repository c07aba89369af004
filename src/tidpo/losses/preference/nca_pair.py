"""``nca_pair``: NCA's pairwise loss on the two rewards ``r = β Σ w ρ``:
``−log σ(r_w) − ½ log σ(−r_w) − ½ log σ(−r_l)``."""

import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def nca_pair(t, s):
    chosen, rejected = s.beta * t.chosen_logratio, s.beta * t.rejected_logratio
    return -F.logsigmoid(chosen) - 0.5 * F.logsigmoid(-chosen) - 0.5 * F.logsigmoid(-rejected)


LOSS = LossType("nca_pair", nca_pair, "logratios", "NCA")
