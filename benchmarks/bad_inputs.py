"""Every bad input we know of, given to ``tidpo train`` as a user would give it, with what came back: the exit
status and the last line on stderr. Writes the table of docs/reliability.md.

    python benchmarks/bad_inputs.py                 # runs each case (tiny model, about a minute), rewrites the table
    python benchmarks/bad_inputs.py --print         # only prints it

Each case builds its files in a scratch folder and runs ``tidpo train`` in this process; a case that would train
is cut off by ``--max_steps 1``. The test suite checks the same kinds of case (tests/data/test_bad_rows.py,
tests/cli/test_bad_setups.py and the files they sit beside); this script records what the user sees.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bad_input_cases import CHAT, CONFIG_CASES, DATA_CASES, GOOD, ONE_STEP, YAML_CASES, jsonl_text  # noqa: E402


def _run(argv) -> tuple[int, str]:
    from tidpo.cli.main import main as tidpo

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = tidpo(argv)
    if status == 0:  # what the final report says about it: the skipped rows, or that it trained
        lines = [line.strip() for line in out.getvalue().splitlines() if "skipped" in line or "done in" in line]
        return status, " / ".join(lines)
    lines = [line for line in err.getvalue().splitlines() if line.strip() and not line.startswith(("  ", "Tokeniz"))]
    return status, (lines[-1] if lines else "")


def _train_argv(scratch: Path, base: Path):
    """``argv(data, out, *extra, model=base)``: a ``tidpo train`` command line cut off after one step."""

    def argv(data, out, *extra, model=base):
        where = ["--model", str(model), "--dataset", str(data), "--output_dir", str(scratch / out)]
        return ["train", *where, *ONE_STEP, *extra]

    return argv


def _write_case_file(path: Path, content) -> None:
    """``content`` at ``path``: a folder holding a note for ``"DIR"``, nothing for ``None``, else bytes or text."""
    if content == "DIR":
        path.mkdir()
        (path / "notes.txt").write_text("not a dataset")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)


def _data_cases(scratch: Path, argv, good: Path):
    """``DATA_CASES``, each in its own folder, then held-out pairs that ``max_length`` drops."""
    for i, (what, name, content, extra) in enumerate(DATA_CASES):
        folder = scratch / f"data{i}"
        folder.mkdir()
        path = folder / name
        _write_case_file(path, content)
        yield "data", what, argv(path, f"out-data{i}", *extra)
    long = scratch / "long-eval.jsonl"
    long.write_text(jsonl_text({**GOOD, "prompt": "the movie was " * 40}))
    yield "data", "held-out pairs all dropped by max_length", argv(good, "out-eval", "--eval_dataset", str(long))


def _config_cases(scratch: Path, argv, good: Path):
    """``CONFIG_CASES`` as flags, then ``YAML_CASES`` as ``--config`` files."""
    for i, (what, extra) in enumerate(CONFIG_CASES):
        yield "config", what, argv(good, f"out-config{i}", *extra)
    for i, (what, text) in enumerate(YAML_CASES.items()):
        config = scratch / f"config{i}.yaml"
        config.write_text(text)
        yield "config", what, ["train", "--config", str(config), *argv(good, f"out-yaml{i}")[1:]]


def _output_cases(scratch: Path, argv, good: Path):
    """Output folders that cannot take the run: under a file, already trained, a half-written checkpoint."""
    (scratch / "a-file").write_text("x")
    yield "output", "`--output_dir` under a file", argv(good, "a-file/out")
    trained = scratch / "out-trained"
    trained.mkdir()
    (trained / "model.safetensors").write_bytes(b"weights")
    yield "output", "`--output_dir` that holds a trained model", argv(good, "out-trained")
    half = scratch / "out-half" / "checkpoint-2"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"half")
    yield (
        "output",
        "resume from a checkpoint without its marker (half-written)",
        argv(good, "out-half", "--resume_from_checkpoint", str(half)),
    )


def _edit_json(path: Path, edit) -> None:
    """Rewrite the JSON file ``path`` after ``edit`` changed its object in place."""
    settings = json.loads(path.read_text())
    edit(settings)
    path.write_text(json.dumps(settings))


def _as_bert(config: dict) -> None:
    config.pop("architectures")
    config["model_type"] = "bert"


def _bert_copy(base: Path, bert: Path) -> Path:
    """A copy of ``base`` whose config names no architectures and calls itself BERT."""
    shutil.copytree(base, bert)
    _edit_json(bert / "config.json", _as_bert)
    return bert


def _truncated_copy(base: Path, cut: Path) -> Path:
    """A copy of ``base`` with the first half of its ``model.safetensors`` only."""
    shutil.copytree(base, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return cut


def _copy_without_chat_template(base: Path, plain: Path) -> Path:
    """A copy of ``base`` whose tokenizer has no chat template (in neither of the files that may hold one)."""
    shutil.copytree(base, plain)
    _edit_json(plain / "tokenizer_config.json", lambda settings: settings.pop("chat_template", None))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    return plain


def _model_cases(scratch: Path, argv, good: Path, base: Path):
    """Model folders that are missing, not a causal LM, damaged, or without the chat template the data needs."""
    yield "model", "model folder that does not exist", argv(good, "out-m0", model=scratch / "no-model")
    bert = _bert_copy(base, scratch / "bert")
    yield "model", "BERT config without `architectures`", argv(good, "out-m1", model=bert)
    cut = _truncated_copy(base, scratch / "cut")
    yield "model", "truncated `model.safetensors`", argv(good, "out-m2", model=cut)
    plain = _copy_without_chat_template(base, scratch / "no-template")
    chat = scratch / "chat.jsonl"
    chat.write_text(jsonl_text(CHAT, CHAT))
    yield "model", "conversational data, tokenizer without a chat template", argv(chat, "out-m3", model=plain)


def cases(scratch: Path):
    """``(kind, what, argv)`` of every case, their files written under ``scratch``."""
    from tests.tiny import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    base = scratch / "model"
    make_model(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    good = scratch / "good.jsonl"
    good.write_text(jsonl_text(GOOD, {**GOOD, "prompt": "tell me about the film"}))
    argv = _train_argv(scratch, base)
    yield from _data_cases(scratch, argv, good)
    yield from _config_cases(scratch, argv, good)
    yield from _output_cases(scratch, argv, good)
    yield "data", "the model folder given as the dataset", argv(base, "out-d-model")
    yield from _model_cases(scratch, argv, good, base)


def table(rows) -> str:
    lines = [
        "| # | kind | input | exit | what the user sees (last line on stderr) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for number, (kind, what, status, line) in enumerate(rows, 1):
        shown = line.replace("|", "\\|")
        if len(shown) > 220:
            shown = shown[:217] + "..."
        lines.append(f"| {number} | {kind} | {what} | {status} | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import datetime as dt

    from speed import write_markdown

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--print", action="store_true")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind, what, command in cases(Path(scratch)):
            status, line = _run(command)
            rows.append((kind, what, status, line.replace(scratch, "$TMP")))
            print(f"{status}  {what}: {line[:150]}", file=sys.stderr)
    text = (
        f"`python benchmarks/bad_inputs.py`, {dt.date.today()}: {len(rows)} cases, "
        f"{sum(status == 2 for *_, status, _ in rows)} refused with one line and exit 2, "
        f"{sum(status == 0 for *_, status, _ in rows)} accepted (exit 0).\n\n" + table(rows)
    )
    print(text)
    if not args.print:
        write_markdown(args.markdown, "bad-inputs", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
