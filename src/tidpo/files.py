"""Output files written whole or not at all: each is written under a temporary name beside it and renamed, so a
kill while writing leaves the previous file (or none), never a truncated one."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

_TEMPORARY = re.compile(r"\..+\.\d+\.partial(\.\w+)?")  # the names replacing() gives: .NAME.PID.partial.EXT


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named as :func:`replacing`'s temporaries are (one a kill left behind, when found later)."""
    return _TEMPORARY.fullmatch(Path(path).name) is not None


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that go by it still do) to write to; renamed to
    ``path`` when the block ends without an error, removed otherwise."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """``Path(path).write_text(text)`` (UTF-8), atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
