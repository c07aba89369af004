"""The error raised for bad preference data, so callers can catch data problems apart from code bugs."""

from __future__ import annotations


class PreferenceDataError(ValueError):
    """A preference dataset or one of its rows is unusable.

    The message names the source (a file path, or ``<Dataset>``), the row (``line N`` for JSON Lines, ``row N``
    otherwise, both 1-based), the field, what was expected and what was found.
    """
