"""``tidpo env``: the versions a bug report needs (Python, the libraries tidpo runs on, the platform, CUDA)."""

from __future__ import annotations

import argparse
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("tidpo", "torch", "transformers", "trl", "peft", "accelerate", "datasets")


def package_version(name: str) -> str:
    """The installed version of a distribution, or ``not installed``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cuda_summary() -> str:
    import torch

    if not torch.cuda.is_available():
        return "not available"
    names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
    return f"available ({torch.cuda.device_count()} × {', '.join(names)}; CUDA {torch.version.cuda})"


def collect() -> dict[str, str]:
    """Name → version (or state) of everything :func:`main` prints."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    info.update({name: package_version(name) for name in PACKAGES})
    info["cuda"] = cuda_summary() if info["torch"] != "not installed" else "unknown (torch not installed)"
    return info


def make_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="tidpo env", description=__doc__)


def main(argv: list[str] | None = None) -> int:
    make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    info = collect()
    width = max(map(len, info))
    print("\n".join(f"{name:<{width}}  {value}" for name, value in info.items()))
    return 0
