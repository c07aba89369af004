"""Under torchrun each worker leaves through ``os._exit`` (a gloo teardown hang), but only from the console entry,
and after the ``atexit`` handlers a user registered; ``tidpo.cli.main.run`` returns, so ``finally`` blocks and
the code after it run (2 processes, gloo, CPU)."""

from __future__ import annotations

import json
import subprocess

from tests.distributed.test_equivalence import HERE, torchrun
from tests.distributed.worker import rows
from tests.tiny import make_model, make_tokenizer


def test_user_atexit_handlers_and_finally_blocks_run_under_torchrun(tmp_path):
    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=0).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(8)))
    marks = tmp_path / "marks"
    marks.mkdir()
    argv = [
        "train",
        "--model",
        str(tmp_path / "model"),
        "--dataset",
        str(tmp_path / "data.jsonl"),
        "--output_dir",
        str(tmp_path / "out"),
        "--use_cpu",
        "--max_steps",
        "1",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--per_device_train_batch_size",
        "2",
        "--triplet_weight",
        "0",
    ]
    command = torchrun(str(HERE / "exit_worker.py"), str(marks), *argv)
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    for rank in ("0", "1"):
        assert (marks / f"finally-{rank}").read_text() == "ran"
        assert (marks / f"returned-{rank}").read_text() == "0"
        assert (marks / f"atexit-{rank}").read_text() == "ran", f"rank {rank}: the user's atexit handler was skipped"
    assert (tmp_path / "out" / "metrics.jsonl").is_file()
