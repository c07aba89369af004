"""``tidpo eval --prompts``: the prompts to sample from, read from the built-in task or a file, each checked to be
a non-empty string."""

from __future__ import annotations

import json
from pathlib import Path

from tidpo.cli.common import CLIError


def load_prompts(source: str) -> list[str]:
    """``demo`` (the sentiment task's held-out openings), a ``.txt`` file (one prompt per non-empty line) or a
    ``.json``/``.jsonl`` file of rows with a ``prompt`` string (a JSON file may also be a list of strings)."""
    if source == "demo":
        from tidpo.tasks.sentiment import load_openings

        return load_openings()[1]
    path = Path(source)
    if not path.is_file():
        raise CLIError(f"--prompts {source!r} is neither 'demo' nor a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CLIError(f"--prompts {path}: not UTF-8 text ({err})") from err
    if path.suffix == ".txt":
        prompts = [line for line in text.splitlines() if line.strip()]
    elif path.suffix in (".json", ".jsonl"):
        prompts = _row_prompts(path, _json_rows(path, text))
    else:
        raise CLIError(f"--prompts {path}: expected a .txt, .json or .jsonl file")
    if not prompts:
        raise CLIError(f"--prompts {path}: no prompts in the file")
    return prompts


def _json_rows(path: Path, text: str) -> list:
    """The rows of a ``.json`` file (one list) or a ``.jsonl`` file (one row per non-empty line)."""
    try:
        rows = (
            json.loads(text)
            if path.suffix == ".json"
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as err:
        raise CLIError(f"--prompts {path}: invalid JSON ({err})") from err
    if not isinstance(rows, list):
        raise CLIError(f"--prompts {path}: expected a list of rows")
    return rows


def _row_prompts(path: Path, rows: list) -> list[str]:
    """Each row's ``prompt`` (a row may be the prompt string itself), checked to be a non-empty string."""
    prompts = []
    for i, row in enumerate(rows):
        prompt = row.get("prompt") if isinstance(row, dict) else row
        if not isinstance(prompt, str) or not prompt.strip():
            raise CLIError(f"--prompts {path}, row {i}, field prompt: expected a non-empty string, got {prompt!r}")
        prompts.append(prompt)
    return prompts
