"""``tidpo train --accelerate_config NAME|FILE``: run the same command under ``accelerate launch``.

The named profiles ship inside the package (``tidpo/resources/accelerate/<name>.yaml``: ``single_gpu``,
``multi_gpu``, ``fsdp2``, ``zero2``, ``zero3``), as plain accelerate config files a user can read and copy; any
other value is the path of the user's own accelerate config. The command is re-run as

    accelerate launch --config_file <profile> [--num_processes <GPUs>] -m tidpo.cli.main train <the other flags>

A shipped multi-process profile runs one process per visible GPU; a user's file is used exactly as written.
Launching is accelerate's job: this module only builds that command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tidpo.cli.common import CLIError

PROFILES_DIR = Path(__file__).resolve().parents[1] / "resources" / "accelerate"
FLAG = "--accelerate_config"


def profiles() -> dict[str, Path]:
    """The shipped profiles: name -> YAML file."""
    return {p.stem: p for p in sorted(PROFILES_DIR.glob("*.yaml"))}


def profile_path(name_or_file: str) -> tuple[Path, bool]:
    """The accelerate config file of ``name_or_file``, and whether it is a shipped profile."""
    shipped = profiles()
    if name_or_file in shipped:
        return shipped[name_or_file], True
    path = Path(name_or_file)
    if path.is_file():
        return path, False
    raise CLIError(
        f"{FLAG} {name_or_file!r} is neither a shipped profile ({', '.join(shipped)}) nor an accelerate config file"
    )


def split_launch_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """``(value of --accelerate_config or None, the other arguments)``; ``--accelerate_config=X`` works too."""
    rest, value = [], None
    args = iter(argv)
    for arg in args:
        if arg == FLAG or arg == FLAG.replace("_", "-"):
            value = next(args, None)
            if value is None or value.startswith("--"):
                raise CLIError(f"{FLAG} needs a profile name or a file")
        elif arg.startswith(f"{FLAG}=") or arg.startswith(f"{FLAG.replace('_', '-')}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return value, rest


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch_command(name_or_file: str, train_argv: list[str], gpus: int | None = None) -> list[str]:
    """The ``accelerate launch`` command that runs ``tidpo train <train_argv>`` with the profile."""
    path, shipped = profile_path(name_or_file)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]
    if shipped and path.stem != "single_gpu":
        gpus = visible_gpus() if gpus is None else gpus
        if gpus > 0:
            cmd += ["--num_processes", str(gpus)]
    return [*cmd, "-m", "tidpo.cli.main", "train", *train_argv]


def relaunch(name_or_file: str, train_argv: list[str]) -> int:
    """Run ``tidpo train`` under ``accelerate launch`` and return its exit status."""
    cmd = launch_command(name_or_file, train_argv)
    print(f"tidpo train: launching {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    return subprocess.call(cmd)
