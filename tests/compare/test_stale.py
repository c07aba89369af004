"""Results made under other settings than the study file's: refused in one line, never read as the file's."""

from __future__ import annotations

import copy
import json

import pytest

from tidpo.compare.runs import FINISHED, plan
from tidpo.compare.spec import SpecError, parse_spec
from tidpo.compare.stale import check_results

from .test_runs import _checkpoint
from .test_spec import GOOD


def _finish(spec, run, **changes):
    """Write ``run``'s marker as train_run does, with the settings the spec gives, then ``changes`` applied."""
    settings = spec.training_settings(run.method, run.seed, str(run.folder))
    settings.update(changes)
    run.folder.mkdir(parents=True, exist_ok=True)
    record = {"settings": settings, "lora": spec.lora(run.method)}
    (run.folder / FINISHED).write_text(json.dumps(record))
    for step in spec.checkpoints:
        _checkpoint(run.folder, step, whole=True)


def _evaluate(spec, run, step, **sampling):
    record = {
        "samples_per_prompt": spec.samples,
        "sample_seed": spec.sample_seed,
        "sampling": {
            "max_new_tokens": spec.max_new_tokens,
            "temperature": spec.temperature,
            "top_p": spec.top_p,
            "top_k": spec.top_k,
            "batch_size": 7,  # the batch size is a cost, not a setting of the numbers
            **sampling,
        },
    }
    path = run.folder / "eval" / f"checkpoint-{step}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_results_made_as_the_file_says_pass_even_from_another_folder(tmp_path):
    spec = parse_spec(GOOD)
    runs = plan(spec, tmp_path)
    _finish(spec, runs[0], output_dir="/somewhere/else")
    _evaluate(spec, runs[0], spec.checkpoints[0])
    check_results(spec, runs)


def test_a_finished_run_with_another_learning_rate_is_refused(tmp_path):
    spec = parse_spec(GOOD)
    run = plan(spec, tmp_path)[1]
    _finish(spec, run, learning_rate=0.123)
    with pytest.raises(SpecError, match=r"run ti-s0 was trained with other settings: learning_rate = 0\.123 there"):
        check_results(spec, plan(spec, tmp_path))


def test_a_setting_added_to_the_file_after_training_is_refused(tmp_path):
    run = plan(parse_spec(GOOD), tmp_path)[0]
    _finish(parse_spec(GOOD), run)
    edited = copy.deepcopy(GOOD)
    edited["recipe"] = {**edited.get("recipe", {}), "weight_decay": 0.5}
    with pytest.raises(SpecError, match="weight_decay = None there, 0.5 in the study file"):
        check_results(parse_spec(edited), plan(parse_spec(edited), tmp_path))


def test_an_evaluation_sampled_at_another_temperature_is_refused(tmp_path):
    spec = parse_spec(GOOD)
    run = plan(spec, tmp_path)[0]
    _evaluate(spec, run, spec.checkpoints[-1], temperature=0.5)
    with pytest.raises(SpecError, match=r"checkpoint-\d+\.json was sampled with other settings: temperature = 0\.5"):
        check_results(spec, plan(spec, tmp_path))


def test_a_checkpoint_step_added_after_the_run_finished_is_refused(tmp_path):
    spec = parse_spec(GOOD)
    run = plan(spec, tmp_path)[0]
    _finish(spec, run)
    edited = copy.deepcopy(GOOD)
    edited["checkpoints"] = sorted({1, *spec.checkpoints})
    assert 1 not in spec.checkpoints
    with pytest.raises(SpecError, match="run dpo-s0 has no checkpoint at step 1 to evaluate"):
        check_results(parse_spec(edited), plan(parse_spec(edited), tmp_path))


def test_an_evaluation_of_other_prompts_is_refused(tmp_path):
    spec = parse_spec(GOOD)
    run = plan(spec, tmp_path)[0]
    _evaluate(spec, run, spec.checkpoints[0])
    path = run.folder / "eval" / f"checkpoint-{spec.checkpoints[0]}.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "prompts_source": spec.prompts, "reward_function": spec.reward}))
    check_results(spec, plan(spec, tmp_path))
    path.write_text(json.dumps({**record, "prompts_source": "other.txt", "reward_function": spec.reward}))
    with pytest.raises(SpecError, match="prompts_source = 'other.txt' there"):
        check_results(spec, plan(spec, tmp_path))
