"""The built-in model's one-time conversion (GGUF to a plain checkpoint) is written to a temporary folder and
renamed: a failed conversion leaves nothing under the final name, and a second process that converted it first
(the other rank of a two-process run) is used as it is."""

from __future__ import annotations

import pytest

from tests.tiny import make_model, make_tokenizer
from tidpo import models

NAME = "smollm2-135m-instruct"


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """The GGUF loading replaced by a tiny model (the conversion's own steps run as they are)."""
    import transformers

    monkeypatch.setenv("TIDPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_gguf_location", lambda name: (tmp_path, "model.gguf"))
    tokenizer = make_tokenizer()
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    model = make_model(tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    return model


def test_conversion_is_renamed_into_place(fake_gguf, tmp_path):
    path = models.builtin_model_path(NAME)
    assert path == tmp_path / "cache" / "models" / NAME and (path / "config.json").is_file()
    assert [p.name for p in path.parent.iterdir()] == [NAME]  # no temporary folder left


def test_a_conversion_that_fails_leaves_nothing_under_the_final_name(fake_gguf, tmp_path, monkeypatch):
    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(fake_gguf), "save_pretrained", dies)
    with pytest.raises(KeyboardInterrupt):
        models.builtin_model_path(NAME)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_a_conversion_another_process_finished_first_is_used(fake_gguf, tmp_path, monkeypatch):
    original = type(fake_gguf).save_pretrained
    target = tmp_path / "cache" / "models" / NAME

    def other_process_wins(self, folder, *args, **kwargs):
        original(self, target)  # the other rank renames its conversion into place while this one writes
        return original(self, folder, *args, **kwargs)

    monkeypatch.setattr(type(fake_gguf), "save_pretrained", other_process_wins)
    assert models.builtin_model_path(NAME) == target and (target / "config.json").is_file()
    assert [p.name for p in target.parent.iterdir()] == [NAME]
