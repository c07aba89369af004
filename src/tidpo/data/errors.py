"""The error raised for bad preference data, so callers can catch data problems apart from code bugs."""

from __future__ import annotations


class PreferenceDataError(ValueError):
    """A preference dataset or one of its rows is unusable.

    The message names the source (a file path, or ``<Dataset>``), the row (``line N`` for JSON Lines, ``row N``
    otherwise, both 1-based), the field, what was expected and what was found.
    """


IMAGE_COLUMNS = ("images", "image")


def refuse_image_columns(columns, where: str) -> None:
    """Vision preference data (an ``images`` or ``image`` column, as TRL's vision rows have) is refused in one line:
    tidpo trains text-only causal LMs and would silently drop the images.

    Raises:
        PreferenceDataError: ``columns`` holds an image column; the message names ``where`` and the column.
    """
    images = [column for column in IMAGE_COLUMNS if column in (columns or ())]
    if images:
        raise PreferenceDataError(
            f"{where}: column {images[0]!r}: tidpo trains text-only causal LMs and would drop the images; "
            "remove the column to train on the text alone"
        )
