"""Preference data: loading and checking rows, tokenising pairs, and batching them (TRL's preference layout).

Imports ``datasets`` and ``transformers``; ``import tidpo`` loads this package only on first use.
"""

from tidpo.data.collator import PreferenceCollator
from tidpo.data.errors import PreferenceDataError
from tidpo.data.preference import load_preference_data, validate_preference_dataset
from tidpo.data.token_weights import (
    TOKEN_WEIGHT_COLUMNS,
    WEIGHT_COLUMNS,
    add_token_weight_columns,
    response_token_weights,
)
from tidpo.data.tokenization import (
    TokenizationReport,
    TokenizedPair,
    common_prefix_length,
    tokenize_pair,
    tokenize_preference_dataset,
    tokenize_preference_dataset_with_report,
    tokenize_preference_row,
)

__all__ = [
    "TOKEN_WEIGHT_COLUMNS",
    "WEIGHT_COLUMNS",
    "PreferenceCollator",
    "PreferenceDataError",
    "TokenizationReport",
    "TokenizedPair",
    "add_token_weight_columns",
    "common_prefix_length",
    "load_preference_data",
    "response_token_weights",
    "tokenize_pair",
    "tokenize_preference_dataset",
    "tokenize_preference_dataset_with_report",
    "tokenize_preference_row",
    "validate_preference_dataset",
]
