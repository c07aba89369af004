"""``tidpo``: dispatch to one module per command; a user's mistake ends in one clear line, not a traceback."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from tidpo.cli.common import CLIError

# command -> (module, one-line help); modules are imported only when their command runs, so `tidpo --help` is fast.
COMMANDS = {
    "train": ("tidpo.cli.train", "train a causal LM with TI-DPO (or a DPO/TDPO baseline)"),
    "eval": ("tidpo.cli.eval", "held-out preference accuracy, margins, rewards, log-probs and KL"),
    "explain": ("tidpo.cli.explain", "show each response token shaded by its TI-DPO weight (HTML + PNG)"),
    "data": ("tidpo.cli.data", "build the built-in datasets (e.g. `tidpo data sentiment`)"),
    "compare": ("tidpo.cli.compare", "reward-against-KL frontiers of several methods over seeds, from a study file"),
    "demo": ("tidpo.cli.demo", "the embedded default: align SmolLM2-135M-Instruct toward positive sentiment"),
    "env": ("tidpo.cli.env", "versions of Python, torch, transformers, trl, peft, accelerate, datasets"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return (
        "usage: tidpo <command> [options]\n\ncommands:\n"
        + "\n".join(lines)
        + ("\n\n`tidpo <command> --help` shows a command's options.")
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tidpo`` console script (and of ``python -m tidpo.cli.main``); returns the exit status.

    In a torchrun worker it ends the process once the command is done (:func:`leave_process`: the ``atexit``
    handlers run first, then ``os._exit``), working around a gloo teardown hang. To get control back in a
    worker of your own (your ``finally`` blocks, code after the call), call :func:`run` instead.
    """
    status = run(argv)
    if _distributed_worker():
        leave_process(status)
    return status


def run(argv: list[str] | None = None) -> int:
    """Run one ``tidpo`` command (``argv`` without the program name) and return its exit status; never ends the
    process. In a torchrun worker an error is printed and returned as status 1 on every rank."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from tidpo import __version__

        print(f"tidpo {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"tidpo: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        status = _run_command(argv)
    except SystemExit as err:
        status = err.code if isinstance(err.code, int) else 1
        if not _distributed_worker():
            raise
    except BaseException:
        if not _distributed_worker():
            raise
        traceback.print_exc()
        status = 1
    return status


def _run_command(argv: list[str]) -> int:
    module = importlib.import_module(COMMANDS[argv[0]][0])
    try:
        return int(module.main(argv[1:]) or 0)
    except CLIError as err:
        print(f"tidpo {argv[0]}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tidpo {argv[0]}: interrupted", file=sys.stderr)
        return 130


def _distributed_worker() -> bool:
    """True in a process that joined a torch.distributed group (torchrun with more than one process)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def leave_process(status: int) -> None:
    """End a torchrun worker now, skipping gloo's teardown: ``destroy_process_group`` or the interpreter's exit can
    hang joining gloo's threads, or abort one rank, after a run that succeeded (both seen in CI). What a user
    registered still runs: the ``atexit`` handlers (a logger's final flush, a tracker's ``finish``), then stdout,
    stderr and logging are flushed, and only then ``os._exit``. Used by the console entry point only
    (:func:`main`), never by library code; every file tidpo writes is closed after each write."""
    import atexit
    import logging

    try:
        atexit._run_exitfuncs()  # handlers print their own tracebacks; the exit status stays the command's
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
