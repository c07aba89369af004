"""Faults a run survives, measured: SIGTERM, SIGINT and `kill -9` mid-run, each followed by a resume, against an
uninterrupted run of the same steps (the largest parameter difference at the end), and `kill -9` during saves in a
loop (whether any checkpoint-N was ever left half-written). Writes the faults table of docs/reliability.md.

    python benchmarks/faults.py               # about 4 minutes on 2 CPU cores
    python benchmarks/faults.py --kills 5     # quicker

The scenarios are those of tests/cli/test_interruptions.py (whose helpers this uses), on the same tiny model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.cli.test_interruptions import (  # noqa: E402
    STEPS,
    _logged_steps,
    _max_difference,
    _run,
    _start,
    _steps_in_metrics,
    _wait_for,
)

from tidpo.training import checkpoints  # noqa: E402


def assets(root: Path):
    from tests.cli.conftest import TinyAssets, write_jsonl
    from tests.tiny import make_model, make_tokenizer
    from tests.training.helpers import sentiment_pairs

    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=0).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    pairs = sentiment_pairs(12).to_list()
    return TinyAssets(root / "base", write_jsonl(root / "train.jsonl", pairs[:8]), write_jsonl(root / "e.jsonl", []))


def signal_case(tiny, root: Path, reference: Path, signum) -> tuple[str, str, str]:
    out = root / f"sig{int(signum)}"
    proc = _start(tiny, out)
    _wait_for(lambda: _logged_steps(out) >= 3, proc)
    proc.send_signal(signum)
    _, err = proc.communicate()
    line = next(line for line in err.splitlines() if "stopped by" in line)
    done = _run(tiny, out, "--resume_from_checkpoint", "true")
    assert done.returncode == 0, done.stderr[-1000:]
    once = _steps_in_metrics(out) == list(range(1, STEPS + 1))
    return (f"{signal.Signals(signum).name} after 3+ steps, then `--resume_from_checkpoint true`",
            f"exit {proc.returncode}; {line.split('; continue')[0].replace(str(root), '$TMP')}",
            f"{_max_difference(out, reference):.1e}; metrics.jsonl holds each step once: {once}")  # fmt: skip


def kill_case(tiny, root: Path, reference: Path) -> tuple[str, str, str]:
    out = root / "kill"
    save = ["--save_strategy", "steps", "--save_steps", "5"]
    proc = _start(tiny, out, *save)
    _wait_for(lambda: (out / "checkpoint-10").exists() and _logged_steps(out) >= 12, proc)
    proc.kill()
    proc.communicate()
    steps = _logged_steps(out)
    done = _run(tiny, out, *save, "--resume_from_checkpoint", "true")
    assert done.returncode == 0, done.stderr[-1000:]
    once = _steps_in_metrics(out) == list(range(1, STEPS + 1))
    return ("`kill -9` mid-run (after step 12, checkpoints every 5 steps), then resume",
            f"killed with {steps} steps logged; resumed from checkpoint-10",
            f"{_max_difference(out, reference):.1e}; metrics.jsonl holds each step once: {once}")  # fmt: skip


def kill_loop(tiny, root: Path, kills: int) -> tuple[str, str, str]:
    out = root / "loop"
    rng = random.Random(0)
    save = ["--save_strategy", "steps", "--save_steps", "1", "--max_steps", "1000"]
    half, staged = 0, 0
    for _ in range(kills):
        resume = ["--resume_from_checkpoint", "true"] if checkpoints.checkpoints(out) else ["--overwrite_output_dir"]
        proc = _start(tiny, out, *save, *resume)
        before = len(checkpoints.checkpoints(out))
        _wait_for(lambda b=before: len(checkpoints.checkpoints(out)) > b, proc)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.kill()
        proc.communicate()
        half += sum(checkpoints.problem(folder) is not None for _, folder in checkpoints.checkpoints(out))
        staged += (out / checkpoints.STAGING).exists()
    last = checkpoints.last_complete(out)
    return (f"`kill -9` at a random moment of a run saving every step, {kills} times (each restart resumes)",
            f"{half} half-written checkpoint-N found; {staged} kills caught a save in progress (left in "
            f"{checkpoints.STAGING}, cleared at the next start)",
            f"resumed {kills - 1} times; last complete: {last.name if last else None}")  # fmt: skip


def main(argv=None) -> int:
    from speed import machine, write_markdown

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "reliability.md")
    args = p.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        tiny = assets(root)
        reference = root / "uninterrupted"
        done = _run(tiny, reference)
        assert done.returncode == 0, done.stderr[-1000:]
        rows = [signal_case(tiny, root, reference, signal.SIGTERM), signal_case(tiny, root, reference, signal.SIGINT),
                kill_case(tiny, root, reference), kill_loop(tiny, root, args.kills)]  # fmt: skip
    m = machine()
    text = "\n".join([
        f"`python benchmarks/faults.py{' --kills ' + str(args.kills) if args.kills != 20 else ''}` on {m['cpu']} "
        f"({m['cpu_count']} cores), {dt.date.today()}, {time.perf_counter() - start:.0f} s. Tiny Llama (2 layers), "
        f"paper preset (attribution, KL and triplet anchors on), {STEPS} steps at a constant learning rate; the "
        "reference is the same command run without interruption.",
        "",
        "| fault | what happened | largest parameter difference after the resume, against the uninterrupted run |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
    ]) + "\n"  # fmt: skip
    print(text)
    write_markdown(args.markdown, "faults", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
