"""``columns_raw``: the dataset's per-token values are the weights, as they are (0 on the EOS and off the response)."""

from tidpo.importance.estimator import Estimator, EstimatorInputs
from tidpo.importance.estimators.columns import column_values, no_zero_rows


def given(x: EstimatorInputs):
    weights = column_values(x, "columns_raw")
    no_zero_rows(
        weights, x.completion_mask.bool(), "importance='columns_raw' would give that response no weight at all"
    )
    return weights


ESTIMATOR = Estimator(
    "columns_raw",
    "given",
    given,
    "those columns are the weights, as they are",
    frozenset({"columns"}),
    rank=6,
)
