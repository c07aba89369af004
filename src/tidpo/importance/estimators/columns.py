"""``columns``: Eq. 8 with the dataset's per-token values (``chosen_weights`` / ``rejected_weights``) as ``I``."""

from tidpo.importance.estimator import Estimator, EstimatorInputs, check_scores


def column_values(x: EstimatorInputs, estimator: str):
    """The dataset's per-token values ``(B, L)``, checked, on the response tokens only (0 on prompt and padding)."""
    if x.columns is None:
        raise ValueError(
            f"importance={estimator!r} needs column_weights: the (B, L) per-token values of the dataset's "
            "chosen_weights / rejected_weights columns, in the token frame (PreferenceCollator puts them in "
            "batch['token_weights'] when the dataset was tokenised with weight_columns=True)"
        )
    return check_scores(x.columns, x.completion_mask, "column weights") * x.completion_mask.bool()


def no_zero_rows(values, response, why: str) -> None:
    """Raises when a row with response tokens has values that are all 0 on them."""
    zero = response.any(-1) & ((values * response).sum(-1) == 0)
    if zero.any():
        rows = zero.nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} of the batch: the column weights are all 0 on the response tokens; {why}")


def scores(x: EstimatorInputs):
    values = column_values(x, "columns")
    if x.mix == 1.0:
        no_zero_rows(values, x.completion_mask.bool(), "importance='columns' with λ = 1 has no prior to fall back on")
    return values


ESTIMATOR = Estimator(
    "columns",
    "hybrid",
    scores,
    "Eq. 8 with the dataset's chosen_weights/rejected_weights as the scores",
    frozenset({"columns"}),
    zero_weight_rows=True,
    rank=5,
)
