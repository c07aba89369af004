"""The bad inputs of ``benchmarks/bad_inputs.py`` as tables: data files (name and content), flags, and YAML
``--config`` files, each with what the user did, plus the training flags every case shares."""

from __future__ import annotations

import json

LATIN1 = b'{"prompt": "caf\xe9", "chosen": " a", "rejected": " b"}\n'
GOOD = {"prompt": "tell me about the movie", "chosen": " the movie was good .", "rejected": " the movie was bad ."}
CHAT = {
    "prompt": [{"role": "user", "content": "tell me about the movie"}],
    "chosen": [{"role": "assistant", "content": "it was good ."}],
    "rejected": [{"role": "assistant", "content": "it was bad ."}],
}


def jsonl_text(*rows) -> str:
    """Rows as JSON Lines text: a string row as it is (a line broken on purpose), any other row as JSON."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def _turn(role, content="it was good ."):
    return [{"role": role, "content": content}]


# (kind, what the user did, file name, file content (str, bytes or None), extra flags)
DATA_CASES = [
    ("malformed JSON line", "pairs.jsonl", jsonl_text(GOOD, '{"prompt": "x", "chosen": '), []),
    ("a JSON line that is a list", "pairs.jsonl", jsonl_text(GOOD, "[1, 2]"), []),
    ("missing field", "pairs.jsonl", jsonl_text(GOOD, {"prompt": "x", "rejected": " y"}), []),
    ("misnamed field (`choosen`)", "pairs.jsonl", jsonl_text({"prompt": "x", "choosen": " a", "rejected": " b"}), []),
    ("field is a number", "pairs.jsonl", jsonl_text(GOOD, {**GOOD, "chosen": 42}), []),
    ("field is null", "pairs.jsonl", jsonl_text(GOOD, {**GOOD, "rejected": None}), []),
    ("field is a nested object", "pairs.jsonl", jsonl_text(GOOD, {**GOOD, "chosen": {"text": "a"}}), []),
    ("empty response", "pairs.jsonl", jsonl_text(GOOD, {**GOOD, "chosen": ""}), []),
    ("whitespace-only response", "pairs.jsonl", jsonl_text(GOOD, {**GOOD, "chosen": "  \n"}), []),
    ("chosen identical to rejected", "pairs.jsonl", jsonl_text(GOOD, {**GOOD, "rejected": GOOD["chosen"]}), []),
    ("role misspelt (`asistant`)", "chat.jsonl", jsonl_text(CHAT, {**CHAT, "chosen": _turn("asistant")}), []),
    ("chosen written as a user turn", "chat.jsonl", jsonl_text(CHAT, {**CHAT, "chosen": _turn("user")}), []),
    (
        "prompt ends with the assistant (wrong order)",
        "chat.jsonl",
        jsonl_text(CHAT, {**CHAT, "prompt": CHAT["prompt"] + _turn("assistant")}),
        [],
    ),
    (
        "a system message after the first",
        "chat.jsonl",
        jsonl_text(CHAT, {**CHAT, "prompt": CHAT["prompt"] + _turn("system", "be nice")}),
        [],
    ),
    ("message without content", "chat.jsonl", jsonl_text(CHAT, {**CHAT, "chosen": [{"role": "assistant"}]}), []),
    ("empty assistant turn", "chat.jsonl", jsonl_text(CHAT, {**CHAT, "rejected": _turn("assistant", "")}), []),
    ("standard and conversational rows mixed", "pairs.jsonl", jsonl_text(GOOD, CHAT), []),
    ("prompt in some rows only", "pairs.jsonl", jsonl_text(GOOD, {"chosen": " a", "rejected": " b"}), []),
    ("non-UTF-8 bytes", "pairs.jsonl", jsonl_text(GOOD).encode() + LATIN1, []),
    ("empty file", "pairs.jsonl", "", []),
    ("CSV with only a header", "pairs.csv", "prompt,chosen,rejected\n", []),
    ("CSV row with a missing value", "pairs.csv", "prompt,chosen,rejected\nx,a\n", []),
    ("JSON array with a non-object", "pairs.json", json.dumps([GOOD, 3]), []),
    ("unsupported file type", "pairs.txt", "hello\n", []),
    ("file that does not exist", "missing.jsonl", None, []),
    ("folder that is not a dataset", "folder", "DIR", []),
    ("every prompt longer than max_length", "long.jsonl", jsonl_text({**GOOD, "prompt": "the movie was " * 40}), []),
    (
        "two bad rows with `--on_bad_row skip`",
        "pairs.jsonl",
        jsonl_text(GOOD, {**GOOD, "chosen": " "}, "{oops", {**GOOD, "prompt": "tell me about the film"}),
        ["--on_bad_row", "skip"],
    ),
    (
        "BOM and CRLF line endings (accepted)",
        "pairs.jsonl",
        b"\xef\xbb\xbf" + jsonl_text(GOOD).replace("\n", "\r\n").encode(),
        [],
    ),
    (
        "JSON object of columns with unequal lengths",
        "pairs.json",
        json.dumps({"prompt": ["a", "b"], "chosen": [" x"], "rejected": [" y", " z"]}),
        [],
    ),
    (
        "JSON object of columns (accepted)",
        "pairs.json",
        json.dumps({key: [value, value + " again"] for key, value in GOOD.items()}),
        [],
    ),
]

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

# every case's training flags: a tiny, CPU-only run that a case which trains ends after one step
ONE_STEP = (
    "--max_steps 1 --per_device_train_batch_size 2 --max_length 32 --use_cpu --anchor_max_new_tokens 2 "
    "--disable_tqdm true --report_to none"
).split()

# what the user did -> the YAML file given as --config
YAML_CASES = {
    "unknown key in the YAML file": "betta: 0.2\n",
    "YAML file that is not a mapping": "- beta\n- 0.2\n",
    "YAML `!!python/object` tag": "beta: !!python/object/apply:os.getcwd []\n",
    "YAML key given twice": "beta: 0.1\nbeta: 0.2\n",
}
