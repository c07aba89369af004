"""`import tidpo` and its math packages stay light: they never load transformers (DESIGN, dependencies)."""

import subprocess
import sys

import pytest


def _loads_transformers(statement: str) -> bool:
    """Run `statement` in a fresh interpreter and report whether `transformers` ended up in sys.modules."""
    code = f"import sys\n{statement}\nprint('transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    "statement",
    ["import tidpo.losses, tidpo.importance, tidpo.ops, tidpo.lm_head", "import tidpo"],
    ids=["math", "top"],
)
def test_import_does_not_load_transformers(statement):
    """torch only: the math layers and the top-level package leave transformers unloaded."""
    assert not _loads_transformers(statement)


def test_oracle_detects_transformers():
    """The check itself works: importing transformers is seen (guards against a vacuous pass)."""
    assert _loads_transformers("import transformers")
