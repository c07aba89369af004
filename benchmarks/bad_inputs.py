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

LATIN1 = b'{"prompt": "caf\xe9", "chosen": " a", "rejected": " b"}\n'
GOOD = {"prompt": "tell me about the movie", "chosen": " the movie was good .", "rejected": " the movie was bad ."}
CHAT = {
    "prompt": [{"role": "user", "content": "tell me about the movie"}],
    "chosen": [{"role": "assistant", "content": "it was good ."}],
    "rejected": [{"role": "assistant", "content": "it was bad ."}],
}


def _lines(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def _turn(role, content="it was good ."):
    return [{"role": role, "content": content}]


# (kind, what the user did, file name, file content (str, bytes or None), extra flags)
DATA_CASES = [
    ("malformed JSON line", "pairs.jsonl", _lines(GOOD, '{"prompt": "x", "chosen": '), []),
    ("a JSON line that is a list", "pairs.jsonl", _lines(GOOD, "[1, 2]"), []),
    ("missing field", "pairs.jsonl", _lines(GOOD, {"prompt": "x", "rejected": " y"}), []),
    ("misnamed field (`choosen`)", "pairs.jsonl", _lines({"prompt": "x", "choosen": " a", "rejected": " b"}), []),
    ("field is a number", "pairs.jsonl", _lines(GOOD, {**GOOD, "chosen": 42}), []),
    ("field is null", "pairs.jsonl", _lines(GOOD, {**GOOD, "rejected": None}), []),
    ("field is a nested object", "pairs.jsonl", _lines(GOOD, {**GOOD, "chosen": {"text": "a"}}), []),
    ("empty response", "pairs.jsonl", _lines(GOOD, {**GOOD, "chosen": ""}), []),
    ("whitespace-only response", "pairs.jsonl", _lines(GOOD, {**GOOD, "chosen": "  \n"}), []),
    ("chosen identical to rejected", "pairs.jsonl", _lines(GOOD, {**GOOD, "rejected": GOOD["chosen"]}), []),
    ("role misspelt (`asistant`)", "chat.jsonl", _lines(CHAT, {**CHAT, "chosen": _turn("asistant")}), []),
    ("chosen written as a user turn", "chat.jsonl", _lines(CHAT, {**CHAT, "chosen": _turn("user")}), []),
    ("prompt ends with the assistant (wrong order)", "chat.jsonl",
     _lines(CHAT, {**CHAT, "prompt": CHAT["prompt"] + _turn("assistant")}), []),
    ("a system message after the first", "chat.jsonl",
     _lines(CHAT, {**CHAT, "prompt": CHAT["prompt"] + _turn("system", "be nice")}), []),
    ("message without content", "chat.jsonl", _lines(CHAT, {**CHAT, "chosen": [{"role": "assistant"}]}), []),
    ("empty assistant turn", "chat.jsonl", _lines(CHAT, {**CHAT, "rejected": _turn("assistant", "")}), []),
    ("standard and conversational rows mixed", "pairs.jsonl", _lines(GOOD, CHAT), []),
    ("prompt in some rows only", "pairs.jsonl", _lines(GOOD, {"chosen": " a", "rejected": " b"}), []),
    ("non-UTF-8 bytes", "pairs.jsonl", _lines(GOOD).encode() + LATIN1, []),
    ("empty file", "pairs.jsonl", "", []),
    ("CSV with only a header", "pairs.csv", "prompt,chosen,rejected\n", []),
    ("CSV row with a missing value", "pairs.csv", "prompt,chosen,rejected\nx,a\n", []),
    ("JSON array with a non-object", "pairs.json", json.dumps([GOOD, 3]), []),
    ("unsupported file type", "pairs.txt", "hello\n", []),
    ("file that does not exist", "missing.jsonl", None, []),
    ("folder that is not a dataset", "folder", "DIR", []),
    ("every prompt longer than max_length", "long.jsonl", _lines({**GOOD, "prompt": "the movie was " * 40}), []),
    ("two bad rows with `--on_bad_row skip`", "pairs.jsonl",
     _lines(GOOD, {**GOOD, "chosen": " "}, "{oops", {**GOOD, "prompt": "tell me about the film"}),
     ["--on_bad_row", "skip"]),
    ("BOM and CRLF line endings (accepted)", "pairs.jsonl",
     b"\xef\xbb\xbf" + _lines(GOOD).replace("\n", "\r\n").encode(), []),
    ("JSON object of columns with unequal lengths", "pairs.json",
     json.dumps({"prompt": ["a", "b"], "chosen": [" x"], "rejected": [" y", " z"]}), []),
    ("JSON object of columns (accepted)", "pairs.json",
     json.dumps({key: [value, value + " again"] for key, value in GOOD.items()}), []),
]  # fmt: skip

CONFIG_CASES = [
    ("λ outside [0, 1]", ["--importance_mix", "1.5"]),
    ("σ divisor ≤ 0", ["--prior_sigma_div", "0"]),
    ("β ≤ 0", ["--beta", "0"]),
    ("β = inf", ["--beta", "inf"]),
    ("negative γ", ["--triplet_weight", "-0.1"]),
    ("negative margin", ["--triplet_margin", "-1"]),
    ("cached reference log-probs with a KL term", ["--precompute_ref_log_probs"]),
    ("unknown flag (`--use_peftt`)", ["--use_peftt"]),
    ("LoRA option without --use_lora", ["--lora_r", "8"]),
    ("`--fp16` on a CPU", ["--fp16"]),
    ("`--save_steps` without `--save_strategy steps`", ["--save_steps", "2"]),
    ("TRL loss this is not (`--loss_type ipo`)", ["--loss_type", "ipo"]),
    ("label smoothing", ["--label_smoothing", "0.1"]),
    ("`--on_nonfinite` misspelt", ["--on_nonfinite", "ignore"]),
    ("`--resume_from_checkpoint` with a missing path", ["--resume_from_checkpoint", "nowhere/checkpoint-3"]),
    ("`--resume_from_checkpoint true` with no checkpoint", ["--resume_from_checkpoint", "true"]),
    ("batch size 0", ["--per_device_train_batch_size", "0"]),
    ("gradient accumulation 0", ["--gradient_accumulation_steps", "0"]),
    ("negative learning rate", ["--learning_rate", "-1"]),
    ("negative seed", ["--seed", "-1"]),
    ("LoRA rank 0", ["--use_lora", "--lora_r", "0"]),
    ("zero epochs and no step count", ["--max_steps", "-1", "--num_train_epochs", "0"]),
]


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


def cases(scratch: Path):
    """``(kind, what, argv)`` of every case, their files written under ``scratch``."""
    from tests.tiny import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    base = scratch / "model"
    make_model(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    good = scratch / "good.jsonl"
    good.write_text(_lines(GOOD, {**GOOD, "prompt": "tell me about the film"}))

    def argv(data, out, *extra, model=base):
        return ["train", "--model", str(model), "--dataset", str(data), "--output_dir", str(scratch / out),
                "--max_steps", "1", "--per_device_train_batch_size", "2", "--max_length", "32", "--use_cpu",
                "--anchor_max_new_tokens", "2", "--disable_tqdm", "true", "--report_to", "none", *extra]  # fmt: skip

    for i, (what, name, content, extra) in enumerate(DATA_CASES):
        folder = scratch / f"data{i}"
        folder.mkdir()
        path = folder / name
        if content == "DIR":
            path.mkdir()
            (path / "notes.txt").write_text("not a dataset")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        yield "data", what, argv(path, f"out-data{i}", *extra)
    long = scratch / "long-eval.jsonl"
    long.write_text(_lines({**GOOD, "prompt": "the movie was " * 40}))
    yield "data", "held-out pairs all dropped by max_length", argv(good, "out-eval", "--eval_dataset", str(long))
    for i, (what, extra) in enumerate(CONFIG_CASES):
        yield "config", what, argv(good, f"out-config{i}", *extra)
    yaml_cases = {
        "unknown key in the YAML file": "betta: 0.2\n",
        "YAML file that is not a mapping": "- beta\n- 0.2\n",
        "YAML `!!python/object` tag": "beta: !!python/object/apply:os.getcwd []\n",
        "YAML key given twice": "beta: 0.1\nbeta: 0.2\n",
    }
    for i, (what, text) in enumerate(yaml_cases.items()):
        config = scratch / f"config{i}.yaml"
        config.write_text(text)
        yield "config", what, ["train", "--config", str(config), *argv(good, f"out-yaml{i}")[1:]]
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
    yield "data", "the model folder given as the dataset", argv(base, "out-d-model")
    yield "model", "model folder that does not exist", argv(good, "out-m0", model=scratch / "no-model")
    bert = scratch / "bert"
    shutil.copytree(base, bert)
    config = json.loads((bert / "config.json").read_text())
    config.pop("architectures")
    config["model_type"] = "bert"
    (bert / "config.json").write_text(json.dumps(config))
    yield "model", "BERT config without `architectures`", argv(good, "out-m1", model=bert)
    cut = scratch / "cut"
    shutil.copytree(base, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    yield "model", "truncated `model.safetensors`", argv(good, "out-m2", model=cut)
    plain = scratch / "no-template"
    shutil.copytree(base, plain)
    settings = json.loads((plain / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(settings))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    chat = scratch / "chat.jsonl"
    chat.write_text(_lines(CHAT, CHAT))
    yield "model", "conversational data, tokenizer without a chat template", argv(chat, "out-m3", model=plain)


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
