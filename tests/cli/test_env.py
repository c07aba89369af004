"""``tidpo env``."""

from __future__ import annotations

import torch

from tidpo.cli.env import package_version
from tidpo.cli.main import main as tidpo


def test_env_prints_versions(capsys):
    assert tidpo(["env"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out
    assert "transformers" in out and "cuda" in out


def test_missing_package_reads_not_installed():
    assert package_version("surely-not-a-package-tidpo") == "not installed"
