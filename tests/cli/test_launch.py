"""``tidpo train --accelerate_config``: the shipped profiles, the launch command, and a real relaunch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from tidpo.cli.common import CLIError
from tidpo.cli.launch import launch_command, profiles, split_launch_flag

EXPECTED = {  # profile -> (distributed type, FSDP version, ZeRO stage)
    "single_gpu": ("NO", None, None),
    "multi_gpu": ("MULTI_GPU", None, None),
    "fsdp2": ("FSDP", 2, None),
    "zero2": ("DEEPSPEED", None, 2),
    "zero3": ("DEEPSPEED", None, 3),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shipped_profile_loads_with_accelerates_own_loader(name):
    config = load_config_from_file(str(profiles()[name]))
    kind, fsdp_version, zero_stage = EXPECTED[name]
    assert config.distributed_type.value == kind
    assert (config.fsdp_config or {}).get("fsdp_version") == fsdp_version
    assert (config.deepspeed_config or {}).get("zero_stage") == zero_stage
    assert config.num_machines == 1 and config.use_cpu is False


def test_only_the_named_profiles_ship():
    assert set(profiles()) == set(EXPECTED)


def test_the_launch_command_runs_tidpo_train_with_the_profile_and_the_visible_gpus(tmp_path):
    cmd = launch_command("fsdp2", ["--model", "m", "--beta", "0.2"], gpus=4)
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--config_file", str(profiles()["fsdp2"])]
    assert cmd[5:7] == ["--num_processes", "4"]
    assert cmd[7:] == ["-m", "tidpo.cli.main", "train", "--model", "m", "--beta", "0.2"]
    assert "--num_processes" not in launch_command("single_gpu", [], gpus=4)
    assert "--num_processes" not in launch_command("multi_gpu", [], gpus=0)  # no GPU: the file's own count
    own = tmp_path / "mine.yaml"
    own.write_text("distributed_type: MULTI_GPU\nnum_processes: 3\n")
    assert launch_command(str(own), [], gpus=8)[4:6] == [str(own), "-m"]  # a user's file is used as written


def test_the_flag_is_split_off_in_both_spellings_and_bad_values_are_one_line():
    assert split_launch_flag(["--beta", "1", "--accelerate_config", "zero2"]) == ("zero2", ["--beta", "1"])
    assert split_launch_flag(["--accelerate-config=fsdp2", "--x"]) == ("fsdp2", ["--x"])
    assert split_launch_flag(["--beta", "1"]) == (None, ["--beta", "1"])
    with pytest.raises(CLIError, match="needs a profile name"):
        split_launch_flag(["--accelerate_config"])
    with pytest.raises(CLIError, match="neither a shipped profile .*fsdp2.* nor an accelerate config file"):
        launch_command("fsdp3", [])


def test_an_unknown_profile_exits_2_before_anything_is_launched(tiny_assets, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tidpo.cli.main", "train", "--model", str(tiny_assets.base), "--dataset",
         str(tiny_assets.train_file), "--output_dir", str(tmp_path / "out"), "--accelerate_config", "fsdp3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "neither a shipped profile" in done.stderr and not (tmp_path / "out").exists()


def test_a_users_own_accelerate_config_relaunches_and_trains(tiny_assets, tmp_path):
    config = tmp_path / "cpu.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\nuse_cpu: true\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "tidpo.cli.main", "train", "--model", str(tiny_assets.base), "--dataset",
         str(tiny_assets.train_file), "--output_dir", str(out), "--max_steps", "2", "--use_cpu", "--report_to",
         "none", "--accelerate_config", str(config)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "launching -m accelerate.commands.launch --config_file" in done.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2 and (out / "model.safetensors").is_file()
