"""``bco_pair``: BCO on pairs, each reward a binary classifier's logit: ``−log σ(r_w) − log σ(−r_l)``."""

import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def bco_pair(t, s):
    return -F.logsigmoid(s.beta * t.chosen_logratio) - F.logsigmoid(-s.beta * t.rejected_logratio)


LOSS = LossType("bco_pair", bco_pair, "logratios", "BCO on pairs")
