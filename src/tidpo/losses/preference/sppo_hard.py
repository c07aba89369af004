"""``sppo_hard``: SPPO with hard win probabilities: each log-ratio pulled to ``±1/(2β)``:
``(Σ w ρ_w − 1/(2β))² + (Σ w ρ_l + 1/(2β))²``."""

from tidpo.losses.loss_type import LossType


def sppo_hard(t, s):
    half = 0.5 / s.beta
    return (t.chosen_logratio - half) ** 2 + (t.rejected_logratio + half) ** 2


LOSS = LossType("sppo_hard", sppo_hard, "logratios", "SPPO, hard probabilities")
