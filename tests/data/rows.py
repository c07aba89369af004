"""Small preference rows shared by the data tests, in both formats, with explicit and implicit prompts."""

from __future__ import annotations

import json
from pathlib import Path

STANDARD = [
    {"prompt": "Human: tell me about cats \n Assistant:", "chosen": " cats are good", "rejected": " cats are bad"},
    {"prompt": "Human: tell me about dogs \n Assistant:", "chosen": " dogs are great", "rejected": " I hated dogs"},
]

CHAT = [
    {
        "prompt": [{"role": "user", "content": "tell me about cats"}],
        "chosen": [{"role": "assistant", "content": "cats are good"}],
        "rejected": [{"role": "assistant", "content": "cats are bad"}],
    },
    {
        "prompt": [{"role": "system", "content": "help"}, {"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "hello"}],
        "rejected": [{"role": "assistant", "content": "no"}],
    },
]


def implicit(rows: list[dict]) -> list[dict]:
    """The same pairs with the prompt folded into chosen and rejected."""
    return [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in rows]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
