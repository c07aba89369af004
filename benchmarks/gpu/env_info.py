"""Part ``env``: the card, its driver, and the versions of the packages the other parts import (and from where)."""

from __future__ import annotations

import importlib
import platform
import subprocess

from common import Report, parser

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "flash_attn", "deepspeed")


def main() -> int:
    args = parser(__doc__).parse_args()
    import torch

    report = Report(args.out, "env", python=platform.python_version())
    packages = {}
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
            packages[name] = f"{getattr(module, '__version__', '?')} ({module.__file__})"
        except Exception as err:  # an absent or broken package is what this part reports
            packages[name] = f"not available: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    report["packages"] = packages
    gpu = torch.cuda.is_available() and not args.cpu
    name = torch.cuda.get_device_name(0) if gpu else f"CPU ({platform.processor() or platform.machine()})"
    report["device_name"] = name
    if gpu:
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = {
            "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda,
        }
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        report["nvidia_smi"] = smi.stdout.strip()
    report["line"] = f"{name}, torch {torch.__version__}, Python {platform.python_version()}."
    report.line(f"Device: {name}.")
    for key, value in packages.items():
        report.line(f"- {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
