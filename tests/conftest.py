import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests.device import DefaultDevice  # noqa: E402
from tests.tiny import make_model, make_tokenizer  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default=os.environ.get("TIDPO_TEST_DEVICE", "cpu"),
        help="where the tests build their models and tensors (cpu, cuda; env TIDPO_TEST_DEVICE): the GPU check "
        "(benchmarks/gpu/) runs the routes' equality tests on cuda",
    )


def pytest_configure(config):
    device = config.getoption("--device")
    if device != "cpu":
        config._tidpo_device = DefaultDevice(device)
        config._tidpo_device.__enter__()


def pytest_unconfigure(config):
    mode = getattr(config, "_tidpo_device", None)
    if mode is not None:
        mode.__exit__(None, None, None)


@pytest.fixture
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    return make_model(tokenizer)
